"""A step stopped while its kernel is still starting (SIGTERM, or a timeout on a slow start)
is stopped once the kernel exists, instead of running the whole notebook."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from toolkit.core.errors import StepFailed
from toolkit.execute.kernel import ExecutionRequest, KernelHandle, execute


@pytest.mark.parametrize("reason", ["interrupted", "timeout"])
def test_a_stop_asked_before_the_kernel_exists_lands_when_it_starts(
    tmp_path: Path, reason: str
) -> None:
    handle = KernelHandle()
    handle.kill(reason)  # what a signal handler or the timeout timer does: no process yet
    out = tmp_path / "slept.txt"
    request = ExecutionRequest(
        step="nap",
        notebook=FIXTURES / "notebooks" / "sleeps.ipynb",
        output=tmp_path / "nap.ipynb",
        parameters={"seconds": 300, "out": str(out)},
        cwd=tmp_path,
        timeout=600 if reason == "timeout" else None,
    )
    with pytest.raises(StepFailed) as failed:
        execute(request, handle)
    assert failed.value.kind == reason
    assert not out.exists()  # the notebook's last cell never ran
