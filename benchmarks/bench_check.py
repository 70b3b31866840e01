"""``toolkit check`` on the example project, whose pipeline attaches data contracts.

Timed from spawn to exit in a fresh process, alternating with ``toolkit --version`` (the
interpreter and CLI start-up), ``repeat`` times each, in a throwaway copy of the project with no
``.toolkit/`` cache: every check validates the suites from scratch, as after an edit. Target:
<= 1 s. Once, untimed, the same check under ``python -X importtime`` says whether Great
Expectations, MLflow or papermill were imported.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import make_project, progress, spawn, stats

TARGET_S = 1.0
ENGINES = ("great_expectations", "mlflow", "papermill", "pandas")


def run(repeat: int = 5) -> dict[str, Any]:
    """Medians in seconds of ``toolkit check`` and ``toolkit --version``; engines imported."""
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        project = make_project(Path(tmp) / "project")
        suites = len(list((project / "expectations").glob("*.json")))
        check, version = [], []
        for r in range(repeat):
            progress("check", f"repetition {r + 1}/{repeat}")
            version.append(spawn([sys.executable, "-m", "toolkit", "--version"], project, "v")[2])
            check.append(spawn([sys.executable, "-m", "toolkit", "check"], project, "check")[2])
        cmd = [sys.executable, "-X", "importtime", "-m", "toolkit", "check"]
        stderr = spawn(cmd, project, "check -X importtime")[4]
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in stderr.splitlines() if "|" in ln}
    return {
        "repeat": repeat,
        "suites": suites,
        "check": stats(check),
        "version": stats(version),
        "engines_imported": [e for e in ENGINES if e in imported],
        "target_s": TARGET_S,
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=2))
