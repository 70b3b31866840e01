"""The toolkit's command line run in the test's own process.

``toolkit.cli.main.main`` is what the console script calls after setting up the process; in
process, a command costs what it does, not the ~4 s of CPU a fresh interpreter spends
importing MLflow, opening its store and importing GX again. The console script itself (exit
codes through ``entry``, signals, kill -9) is tested through real processes in ``tests/cli`` and
``tests/faults``; tests that only need a command's result use this.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from toolkit.cli.main import main


def run_here(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``toolkit ARGS`` in ``cwd`` with ``env`` added, as a CompletedProcess (exit code,
    stdout, stderr). The working directory and the environment are restored afterwards, so
    whatever a command sets for its kernels never reaches the next test."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["toolkit", *args], code, out.getvalue(), err.getvalue())
