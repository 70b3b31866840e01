"""What the toolkit asks of MLflow, through the environment variables MLflow reads.

Set by the two modules that import MLflow, before they do; a value the user set wins. Kernels
inherit them, so a notebook's own MLflow calls behave alike.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # read when MLflow's telemetry client is first used
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Against a server MLflow prints "View run ... at" on stdout, ahead of the --json summary.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # MLflow retries a request to an unreachable server 7 times, with a backoff factor of 2:
    # about 4 minutes per call, so a server that died mid-run held the run, its kernels and a
    # scheduler's slot for many minutes, and `toolkit runs list` took 4 minutes to fail.
    # 3 retries with a factor of 1 ride out a restart of a few seconds and fail in ~10 s.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def use_mlflow_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
