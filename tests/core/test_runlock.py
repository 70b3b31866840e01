"""No overlapping runs of one pipeline in one project."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import MakeProject

SPEC = "name: locked\nsteps:\n  - {name: nap, notebook: ../notebooks/sleeps.ipynb, parameters: {seconds: 4}, outputs: {out: o.txt}}\n"


@pytest.mark.slow
def test_two_concurrent_invocations_exactly_one_runs(make_project: MakeProject) -> None:
    spec = make_project(SPEC, notebooks=("sleeps",))
    cmd = [sys.executable, "-m", "toolkit", "run", str(spec), "--quiet", "--no-tracking"]
    first = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    lock = spec.parents[1] / ".toolkit" / "locks" / "locked.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.1)
    second = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 6
    assert "already running" in second.stderr and "pid" in second.stderr
    assert len(list((spec.parents[1] / "runs" / "locked").iterdir())) == 1


def test_lock_of_a_dead_holder_is_taken_over(make_project: MakeProject) -> None:
    from toolkit.core.runlock import pipeline_lock

    spec = make_project(SPEC, notebooks=("sleeps",))
    lock_dir = spec.parents[1] / ".toolkit" / "locks"
    # A holder that is killed: its flock dies with it, leaving only the file behind.
    code = (
        "import os;"
        "from pathlib import Path; from toolkit.core.runlock import pipeline_lock;"
        f"cm = pipeline_lock(Path({str(lock_dir)!r}), 'locked', 'dead'); cm.__enter__(); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert "dead" in (lock_dir / "locked.lock").read_text()
    with pipeline_lock(lock_dir, "locked", "alive"):
        assert "alive" in (lock_dir / "locked.lock").read_text()
