"""A step's notebook as one offline HTML page: the renderer is kept between renders (compiling
nbconvert's templates again cost most of each render), and what one render leaves behind must
never show in the next."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from toolkit.reports.notebook_html import render_html


def _executed(path: Path, word: str, *, html_output: bool) -> Path:
    """An executed notebook with markdown, a printed line, a rich output and an error."""
    outputs = [new_output("stream", name="stdout", text=f"{word} printed\n")]
    if html_output:
        table = f"<table><tr><th>col</th></tr><tr><td>{word}</td></tr></table>"
        outputs.append(new_output("execute_result", data={"text/html": table}, execution_count=1))
    cells = [
        new_markdown_cell(f"# About {word}\n\nSome *emphasis*."),
        new_code_cell(f"print('{word} printed')", outputs=outputs, execution_count=1),
        new_code_cell(
            "1 / 0",
            execution_count=2,
            outputs=[new_output("error", ename="ZeroDivisionError", evalue=word, traceback=[])],
        ),
    ]
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


def test_a_render_after_others_equals_a_first_render_in_a_fresh_process(tmp_path: Path) -> None:
    first = _executed(tmp_path / "first.ipynb", "alpha", html_output=True)
    other = _executed(tmp_path / "other.ipynb", "beta", html_output=False)
    for notebook in (first, other):  # the kept renderer has rendered other pages before
        render_html(notebook, tmp_path / "warm-up.html", title=notebook.stem)
    here = render_html(first, tmp_path / "here.html", title="first").read_text()
    fresh = tmp_path / "fresh.html"
    code = (
        "import sys; from pathlib import Path; from toolkit.reports.notebook_html import "
        "render_html; render_html(Path(sys.argv[1]), Path(sys.argv[2]), title='first')"
    )
    subprocess.run([sys.executable, "-c", code, str(first), str(fresh)], check=True)
    assert here == fresh.read_text()
    assert "alpha" in here and "beta" not in here
    # The report-style page (inputs left out) is another renderer, not the same one changed.
    bare = render_html(first, tmp_path / "bare.html", exclude_input=True).read_text()
    assert 'jp-InputArea-editor"' not in bare
    assert 'jp-InputArea-editor"' in render_html(first, tmp_path / "again.html").read_text()
    assert render_html(first, tmp_path / "last.html", title="first").read_text() == here
