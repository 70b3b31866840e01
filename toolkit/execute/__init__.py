"""Running pipelines: plan, execute steps, check contracts, track, report."""

from toolkit.execute.orchestrator import (
    Event,
    RunRequest,
    latest_output,
    new_run_id,
    prepare,
    run_pipeline,
)

__all__ = ["Event", "RunRequest", "latest_output", "new_run_id", "prepare", "run_pipeline"]
