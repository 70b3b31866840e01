"""Running pipelines: plan, execute steps, check contracts, track, report."""

from toolkit.execute.orchestrator import run_pipeline
from toolkit.execute.request import RunRequest, new_run_id, prepare
from toolkit.execute.resume import latest_output
from toolkit.execute.step_context import Event

__all__ = ["Event", "RunRequest", "latest_output", "new_run_id", "prepare", "run_pipeline"]
