"""Guessing file parameters and how a notebook's code uses them, without a kernel."""

from __future__ import annotations

import pytest

from toolkit.specs.notebook_paths import looks_like_path, name_hint, scan_usage


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../data/raw.csv", True),
        ("model.joblib", True),
        ("out/", True),
        ("C:\\data\\x.parquet", True),
        ("s3://bucket/x.csv", False),  # a URL: not a local file to hash or wire
        ("models:/clf@champion", False),
        ("v1.2", False),  # a version, not a file extension
        ("sklearn", False),
        ("", False),
        (3.5, False),
        ("two\nlines.txt", False),
    ],
)
def test_looks_like_path(value: object, expected: bool) -> None:
    assert looks_like_path(value) is expected


def test_scan_usage_follows_calls_modes_and_aliases() -> None:
    cells = [
        "import pandas as pd\ndf = pd.read_csv(raw)\n%matplotlib inline",
        "target = Path(out_dir) / 'clean.parquet'\ndf.to_parquet(target)",
        "with open(log, 'a') as fh:\n    fh.write('done')\ncfg = json.load(open(config))",
        "Path(report).write_text(html)\nunused = lookup",
        "df.to_csv(\n    summary,\n    index=False,\n)",
        "this is not python (",
    ]
    names = ["raw", "out_dir", "log", "config", "report", "lookup", "summary"]
    usage = scan_usage(cells, names)
    assert usage["raw"].reads == ["pd.read_csv(raw)"] and not usage["raw"].writes
    assert usage["out_dir"].writes == ["df.to_parquet(target)"]
    assert usage["log"].writes == ["open(log, 'a')"]
    assert usage["config"].reads == ["open(config)"]
    assert usage["report"].writes == ["Path(report).write_text(html)"]
    assert not usage["lookup"].reads and not usage["lookup"].writes
    assert usage["summary"].writes == ["df.to_csv( summary, index=False, )"]  # one line


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("out_path", "output"),
        ("reportFile", "output"),
        ("input_csv", "input"),
        ("raw", "input"),
        ("lookup", None),
        ("outlier_threshold", None),  # "outlier" is not "out"
    ],
)
def test_name_hint(name: str, hint: str | None) -> None:
    assert name_hint(name) == hint
