"""The run-to-run diff as data, text and an offline page, from hand-made run records."""

from __future__ import annotations

import re

import nbformat

from toolkit.reports.rundiff import render_html, render_text
from toolkit.tracking.comparison import RunSide, StepSide, diff_runs


def notebook(c: str, output: str) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"C = {c}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(C)"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    return nbformat.from_dict(nb)


def side(
    name: str, pipeline: str, c: str, acc: float, output: str = "1\n", **kw: object
) -> RunSide:
    step = StepSide(
        status="succeeded",
        metrics={"accuracy": acc},
        fingerprints={
            "output.model": {"rows": 10, "schema": {"a": "int64"}, "sha256": f"{name}-hash"}
        },
        contracts={"outputs.model": acc > 0.5},
        notebook=notebook(c, output),
    )
    base = {
        "name": name,
        "pipeline": pipeline,
        "commit": "a" * 40,
        "dirty": False,
        "parameters": {"train.C": c},
        "steps": {"train": step},
        "environment": {"python": "3.11.7", "packages": {"pandas": "2.1.0"}},
    }
    return RunSide(**{**base, **kw})  # type: ignore[arg-type]


def test_diff_lists_each_kind_of_change_and_notes_different_pipelines() -> None:
    a = side("r1", "train", "1.0", 0.9)
    b = side(
        "r2",
        "train-v2",
        "0.5",
        0.4,
        environment={"python": "3.11.7", "packages": {"pandas": "2.2.0"}},
    )
    d = diff_runs(a, b)
    assert d.parameters == [{"key": "train.C", "a": "1.0", "b": "0.5"}]
    assert d.metrics[0]["delta"] == 0.4 - 0.9
    assert d.contracts == [{"step": "train", "target": "outputs.model", "a": True, "b": False}]
    assert {o["field"] for o in d.outputs} == {"sha256"}
    assert d.environment == [{"item": "package pandas", "a": "2.1.0", "b": "2.2.0"}]
    assert any("steps are matched by name" in n for n in d.notes)
    assert d.notebooks[0].changed and "+C = 0.5" in d.notebooks[0].unified
    text = render_text(d.to_dict())
    assert "train.accuracy: 0.9 -> 0.4 (-0.5)" in text
    assert "package pandas: 2.1.0 -> 2.2.0" in text


def test_outputs_are_ignored_unless_asked_and_identical_runs_say_so() -> None:
    a, b = side("r1", "train", "1.0", 0.9, "1\n"), side("r2", "train", "1.0", 0.9, "2\n")
    quiet = diff_runs(a, b)
    assert not quiet.notebooks[0].changed
    loud = diff_runs(a, b, outputs=True)
    assert loud.notebooks[0].changed and "out: 2" in loud.notebooks[0].unified
    same = diff_runs(a, a)
    assert not same.changed
    assert render_text(same.to_dict()).startswith("diff r1 -> r1: no differences")


def test_page_is_offline_and_escapes_everything() -> None:
    evil = "<script>alert(1)</script>"
    d = diff_runs(side("r1", "train", "1.0", 0.9), side("r2", "train", evil, 0.9)).to_dict()
    page = render_html(d)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    fragment = render_html(d, standalone=False)
    assert "<html" not in fragment and "&lt;script&gt;" in fragment
