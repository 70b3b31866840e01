"""``docs/reliability.md`` is the table the suite generates, and it lists enough cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_reliability_doc_is_generated_from_the_suite(tmp_path: Path) -> None:
    """Regenerating the table from the collected suite gives exactly the committed file
    (run `make reliability-doc` after adding or changing a fault case)."""
    fresh = tmp_path / "reliability.md"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/faults", "--collect-only", "-q",
         "-p", "no:cacheprovider", f"--reliability-table={fresh}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    committed = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert committed == fresh.read_text(encoding="utf-8"), "run `make reliability-doc`"
    count = int(re.search(r"\*\*(\d+) cases\*\*", committed).group(1))
    assert count >= 60
