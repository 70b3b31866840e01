from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.core.errors import NotebookError
from toolkit.specs.notebook_params import overwritten, read_params

FIXTURES = Path(__file__).parents[1] / "fixtures" / "notebooks"


def test_reads_defaults_from_the_parameters_cell() -> None:
    params = read_params(FIXTURES / "ok.ipynb")
    assert params.defaults == {"x": 1, "label": "a", "inp": "", "out": "out.txt"}
    assert params.cell_index == 1
    assert params.kernel == "python3"


def test_non_literal_defaults_keep_their_source(tmp_path: Path) -> None:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": "%matplotlib inline\nn: int = 3\npath = str(1 + 1)\n",
            }
        ]
    }
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    assert read_params(tmp_path / "n.ipynb").defaults == {"n": 3, "path": "str(1 + 1)"}


def test_invalid_parameters_cell(tmp_path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = ("}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    with pytest.raises(NotebookError, match="not valid Python"):
        read_params(tmp_path / "n.ipynb")


def test_not_a_notebook(tmp_path: Path) -> None:
    (tmp_path / "n.ipynb").write_text("{}")
    with pytest.raises(NotebookError, match="not a Jupyter notebook"):
        read_params(tmp_path / "n.ipynb")


def test_a_previous_injected_cell_is_not_an_overwrite(tmp_path: Path) -> None:
    """An executed notebook run again keeps papermill's ``injected-parameters`` cell, which the
    next run replaces: its assignments do not overwrite the new values (a tester was warned
    that "the notebook's value wins" while the pipeline's did)."""
    cells = [
        ("a = 1", ["parameters"]),
        ("a = 7", ["injected-parameters"]),
        ("b = a + 1", []),
        ("a = 3", []),
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": t}, "source": s} for s, t in cells]}
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    params = read_params(tmp_path / "n.ipynb")
    assert overwritten(params, {"a"}) == {"a": 3}  # the plain cell, not the injected one
