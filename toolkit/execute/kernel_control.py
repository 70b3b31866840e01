"""Talking to a running kernel outside its notebook, and stopping kernels off the critical path.

Used by the step executor (:mod:`toolkit.execute.kernel`) and the warm kernels
(:mod:`toolkit.execute.warm`); nothing here imports papermill.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

_SHUTDOWNS: list[threading.Thread] = []


# Run in a pre-warmed kernel after its notebook: end the notebook's MLflow run now, so that
# the kernel's exit (MLflow ends the active run FINISHED at exit) cannot overwrite the status
# the orchestrator sets afterwards.
END_MLFLOW_RUN = (
    "import sys as __s\n"
    "if 'mlflow' in __s.modules and __s.modules['mlflow'].active_run() is not None:\n"
    "    __s.modules['mlflow'].end_run()\n"
    "del __s\n"
)


def set_env_code(env: Mapping[str, str]) -> str:
    """Code that sets environment variables in a kernel that is already running."""
    return f"__import__('os').environ.update({dict(env)!r})\n"


async def execute_silently(km: Any, code: str, timeout: float = 60) -> None:
    """Wait until the kernel answers, then run ``code`` (if any) in it without touching its
    notebook: no history, no output, and the client is closed again."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=timeout)
        if code:
            msg_id = kc.execute(code, silent=True, store_history=False)
            while True:
                reply = await kc.get_shell_msg(timeout=timeout)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return
    finally:
        kc.stop_channels()
        with contextlib.suppress(ValueError):
            km.clients.remove(kc)


def run_silent(km: Any, code: str) -> None:
    """Execute ``code`` in a running kernel without touching its notebook (best effort)."""
    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(execute_silently(km, code))


def process_alive(km: Any) -> bool:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return process is not None and process.poll() is None


def stop_kernel(km: Any, now: bool = False) -> None:
    import asyncio

    for kc in getattr(km, "clients", []):
        with contextlib.suppress(Exception):
            kc.stop_channels()
    with contextlib.suppress(Exception):
        asyncio.run(km.shutdown_kernel(now=now))


def in_background(target: Callable[[], None]) -> None:
    thread = threading.Thread(target=target, name="toolkit-kernel-stop", daemon=True)
    thread.start()
    _SHUTDOWNS.append(thread)


def shutdown_in_background(km: Any) -> None:
    """Close a kernel's clients and shut it down gracefully, off the caller's critical path."""
    in_background(lambda: stop_kernel(km))


def wait_for_shutdowns(timeout: float = 15) -> None:
    """Wait for background kernel shutdowns, so a run leaves no kernel behind."""
    deadline = time.monotonic() + timeout
    while _SHUTDOWNS:
        _SHUTDOWNS.pop().join(max(0.0, deadline - time.monotonic()))
