"""The step executor: run one notebook in its own Jupyter kernel with papermill.

This is the only module that imports papermill (lazily). It reads top to bottom like
papermill's own ``execute.py``: prepare the kernel, execute, translate failures, keep the
executed notebook. A failure always leaves the executed notebook at ``output`` for debugging.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import StepFailed

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class KernelHandle:
    """Lets another thread stop the kernel of a running step (timeouts, SIGTERM)."""

    reason: str | None = None
    _km: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, km: Any) -> None:
        with self._lock:
            self._km = km
            if self.reason is not None:
                self._kill_locked()

    def kill(self, reason: str) -> None:
        """Kill the kernel process now; the executing thread then fails with ``reason``."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._kill_locked()

    def _kill_locked(self) -> None:
        process = getattr(getattr(self._km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)


def _kernel_manager_class(env: Mapping[str, str], handle: KernelHandle) -> type:
    from jupyter_client.manager import AsyncKernelManager

    class StepKernelManager(AsyncKernelManager):  # type: ignore[misc]
        """A kernel manager that gives the kernel this step's environment, quietly."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # Encrypted transport silences ipykernel's per-start "running over TCP" warning.
            self.transport_encryption = "auto"
            handle.attach(self)

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            return await super()._async_pre_start_kernel(**kw)

    return StepKernelManager


def _clean(lines: Any) -> str:
    text = "\n".join(lines) if isinstance(lines, list | tuple) else str(lines or "")
    return ANSI_RE.sub("", text)


class _Stream:
    """A file-like object papermill writes cell output to; hands it on as ``(name, text)``."""

    def __init__(self, name: str, sink: Callable[[str, str], None]) -> None:
        self.name = name
        self.sink = sink

    def write(self, text: str) -> int:
        if text:
            self.sink(self.name, text)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class ExecutionRequest:
    """One execution of one step's notebook."""

    step: str
    notebook: Path
    output: Path
    parameters: Mapping[str, Any]
    cwd: Path
    kernel: str = "python3"
    timeout: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    output_sink: Callable[[str, str], None] | None = None  # (stream name, text) of the cells


def execute(request: ExecutionRequest, handle: KernelHandle | None = None) -> Path:
    """Execute a notebook; return the executed notebook's path.

    Raises:
        StepFailed: a cell raised (``kind="cell"``), the kernel died (``"dead_kernel"``), the
            step ran past its timeout (``"timeout"``) or was stopped (``"interrupted"``).
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    handle = handle or KernelHandle()
    request.output.parent.mkdir(parents=True, exist_ok=True)
    partial = request.output.with_name(f".{request.output.stem}.partial.ipynb")
    timer = None
    if request.timeout:
        timer = threading.Timer(request.timeout, handle.kill, args=("timeout",))
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    try:
        pm.execute_notebook(
            str(request.notebook),
            str(partial),
            parameters=dict(request.parameters),
            kernel_name=request.kernel,
            cwd=str(request.cwd),
            progress_bar=False,
            log_output=False,
            stdout_file=_Stream("stdout", request.output_sink) if request.output_sink else None,
            stderr_file=_Stream("stderr", request.output_sink) if request.output_sink else None,
            execution_timeout=request.timeout,
            kernel_manager_class=_kernel_manager_class(dict(request.env), handle),
        )
    except PapermillExecutionError as exc:
        raise StepFailed(
            request.step,
            f"cell {exc.cell_index} (In [{exc.exec_count}]) raised {exc.ename}: {exc.evalue}",
            kind="cell",
            cell_index=exc.cell_index,
            ename=exc.ename,
            evalue=exc.evalue,
            traceback=_clean(exc.traceback),
            notebook=request.output,
        ) from exc
    except Exception as exc:  # the kernel, not the notebook, failed: classify why
        elapsed = time.monotonic() - started
        if handle.reason == "timeout" or isinstance(exc, CellTimeoutError | TimeoutError):
            raise StepFailed(
                request.step,
                f"timed out after {elapsed:.1f}s (timeout: {request.timeout}s)",
                kind="timeout",
                notebook=request.output,
            ) from exc
        if handle.reason == "interrupted":
            raise StepFailed(
                request.step, "interrupted", kind="interrupted", notebook=request.output
            ) from exc
        if isinstance(exc, DeadKernelError):
            raise StepFailed(
                request.step,
                "the kernel died (out of memory, a crash in native code, or os._exit)",
                kind="dead_kernel",
                notebook=request.output,
            ) from exc
        raise StepFailed(
            request.step, f"{type(exc).__name__}: {exc}", kind="error", notebook=request.output
        ) from exc
    finally:
        if timer is not None:
            timer.cancel()
        if partial.exists():
            os.replace(partial, request.output)
    return request.output
