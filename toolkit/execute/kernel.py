"""The step executor: run one notebook in its own Jupyter kernel with papermill.

This is the only module that imports papermill (lazily). It reads top to bottom like
papermill's own ``execute.py``: prepare the kernel, execute, translate failures, keep the
executed notebook. A failure always leaves the executed notebook at ``output`` for debugging.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolkit.core.errors import StepFailed, did_you_mean
from toolkit.core.lineage import JUPYTER_IMPORT_LOCK
from toolkit.execute.kernel_control import (
    END_MLFLOW_RUN,
    process_alive,
    run_silent,
    set_env_code,
    shutdown_in_background,
)
from toolkit.specs.notebook_source import for_execution

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

    def launched(self) -> None:
        """The kernel's process exists now: a stop asked for while it was starting (a SIGTERM,
        a timeout on a slow start) finds no process to kill, so it lands here instead of
        letting the whole notebook run."""
        with self._lock:
            if self.reason is not None:
                self._kill_locked()

    def _kill_locked(self) -> None:
        process = getattr(getattr(self._km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)


def _import_engines() -> None:
    """Import papermill, nbclient and jupyter_client once, under one lock.

    A warm kernel's thread and a step's thread can both make the first import; their modules
    import each other, and Python then hands one thread a half-initialised module
    ("cannot import name 'AsyncKernelManager' from partially initialized module"), which a
    fresh-clone test run hit.
    """
    with JUPYTER_IMPORT_LOCK:  # shared with toolkit.core.lineage, which imports it on a thread too
        import jupyter_client.manager  # noqa: F401
        import papermill  # noqa: F401


def kernel_manager_class(
    env: Mapping[str, str], handle: KernelHandle, stderr: Path | None = None
) -> type:
    _import_engines()
    from jupyter_client.manager import AsyncKernelManager

    class StepKernelManager(AsyncKernelManager):
        """A kernel manager that gives the kernel this step's environment, quietly."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # Encrypted transport silences ipykernel's per-start "running over TCP" warning.
            self.transport_encryption = "auto"
            self.clients: list[Any] = []
            handle.attach(self)

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            return await super()._async_pre_start_kernel(**kw)

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            # Never the toolkit's stdout, which carries `--json` for schedulers: what a C
            # library, a subprocess or os.write(1, ...) prints in a cell skips the notebook's
            # outputs and would land there, before the JSON and unscrubbed.
            if stderr is None:  # --log-output: the terminal, on stderr
                await super()._async_launch_kernel(kernel_cmd, stdout=2, **kw)
            else:
                # The kernel's own log (start-up warnings, "KeyboardInterrupt caught in kernel"
                # at shutdown) goes to the step's log folder, not the terminal; the step scrubs
                # it of the run's secrets when it ends.
                stderr.parent.mkdir(parents=True, exist_ok=True)
                with stderr.open("ab") as sink:
                    await super()._async_launch_kernel(kernel_cmd, stdout=sink, stderr=sink, **kw)
            handle.launched()

        def client(self, **kwargs: Any) -> Any:
            # nbclient leaves the channels of a kernel it doesn't own open (fds and threads
            # pile up): remember every client so the owner can close them.
            kc = super().client(**kwargs)
            self.clients.append(kc)
            return kc

    return StepKernelManager


# Started in every step kernel (a file path, so any Python kernel can run it, toolkit installed
# there or not): records the files the notebook reads and writes; see toolkit/execute/kernel_audit.py.
AUDIT_SCRIPT = Path(__file__).with_name("kernel_audit.py")


@functools.cache
def kernel_language(name: str) -> str | None:
    """The language of kernelspec ``name``; None when it is not installed (the step then fails
    with the message for a missing kernel)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return str(KernelSpecManager().get_kernel_spec(name).language) or None
    except NoSuchKernel:
        return None


def kernel_arguments() -> list[str]:
    """Extra kernel command-line arguments: no history file, and the file-audit hook."""
    boot = f"__import__('runpy').run_path({str(AUDIT_SCRIPT)!r}) and None"
    return ["--HistoryManager.hist_file=:memory:", f"--IPKernelApp.exec_lines={boot}"]


class WarmSource(Protocol):
    """A kernel started ahead of its step (:class:`toolkit.execute.warm.WarmKernel`)."""

    def take(self) -> Any | None: ...


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
    # Values only known once the step starts (its MLflow run): set in a warm kernel before
    # the first cell, passed with ``env`` to a fresh one.
    late_env: Mapping[str, str] = field(default_factory=dict)
    output_sink: Callable[[str, str], None] | None = None  # (stream name, text) of the cells
    kernel_log: Path | None = None  # where the kernel's own stderr goes (None: inherited)


class _CellWatch:
    """nbclient hooks: which cell is running, and the error a cell's reply carried.

    The executed notebook can't say which cell a timeout or a dead kernel interrupted
    (papermill marks every cell completed), and for errors raised outside the cell's
    outputs (a line magic's UsageError) papermill keeps no message: the reply has both.
    """

    def __init__(self) -> None:
        self.index: int | None = None
        self.source = ""
        self.error: dict[str, Any] = {}

    def on_cell_execute(self, cell: Any, cell_index: int, **_: Any) -> None:
        self.index, self.source = cell_index, str(cell.get("source", ""))

    def on_cell_error(self, cell: Any, cell_index: int, execute_reply: Any, **_: Any) -> None:
        content = (execute_reply or {}).get("content", {})
        self.error = {
            "ename": content.get("ename") or "",
            "evalue": content.get("evalue") or "",
            "traceback": content.get("traceback") or [],
        }

    def running(self) -> str:
        if self.index is None:
            return "before the first cell"
        first = next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")
        return f"in cell {self.index}" + (f" ({first[:60]})" if first else "")


def execute(
    request: ExecutionRequest, handle: KernelHandle | None = None, warm: WarmSource | None = None
) -> Path:
    """Execute a notebook; return the executed notebook's path.

    With ``warm``, the notebook runs in that pre-started kernel (if it came up), which is then
    shut down in the background; otherwise papermill starts and stops a kernel itself.

    Raises:
        StepFailed: a cell raised (``kind="cell"``), the kernel died (``"dead_kernel"``), the
            step ran past its timeout (``"timeout"``) or was stopped (``"interrupted"``).
    """
    _import_engines()
    import papermill as pm
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    handle = handle or KernelHandle()
    km = warm.take() if warm is not None else None
    if km is not None:
        handle.attach(km)
        if request.late_env:
            run_silent(km, set_env_code(request.late_env))
    request.output.parent.mkdir(parents=True, exist_ok=True)
    partial = request.output.with_name(f".{request.output.stem}.partial.ipynb")
    timer = None
    if request.timeout:
        timer = threading.Timer(request.timeout, handle.kill, args=("timeout",))
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    watch = _CellWatch()
    try:
        pm.execute_notebook(
            for_execution(request.notebook),  # a path, or the cells of a percent .py
            str(partial),
            parameters=dict(request.parameters),
            kernel_name=request.kernel,
            # papermill takes the language that renders the parameters from the notebook's
            # metadata, which a notebook made by a tool (nbformat's new_notebook) may lack:
            # "No language found in notebook". The kernel that will run it knows.
            language=kernel_language(request.kernel),
            cwd=str(request.cwd),
            # papermill applies cwd= with a process-wide chdir; a kernel another step's thread
            # starts meanwhile would inherit that folder. nbclient passes this one explicitly.
            resources={"metadata": {"path": str(request.cwd)}},
            progress_bar=False,
            log_output=False,
            stdout_file=_Stream("stdout", request.output_sink) if request.output_sink else None,
            stderr_file=_Stream("stderr", request.output_sink) if request.output_sink else None,
            execution_timeout=request.timeout,
            extra_arguments=kernel_arguments()[1:],  # nbclient adds its own history setting
            kernel_manager_class=kernel_manager_class(
                {**request.env, **request.late_env}, handle, request.kernel_log
            ),
            on_cell_execute=watch.on_cell_execute,
            on_cell_error=watch.on_cell_error,
            **({"km": km} if km is not None else {}),
        )
    except PapermillExecutionError as exc:
        ename, evalue, traceback = exc.ename, exc.evalue, exc.traceback
        if not evalue and watch.error:  # papermill dropped the message; the reply has it
            ename = watch.error["ename"] or ename
            evalue = watch.error["evalue"]
            traceback = watch.error["traceback"] or traceback
        raise StepFailed(
            request.step,
            f"cell {exc.cell_index} (In [{exc.exec_count}]) raised {ename}: {evalue}",
            kind="cell",
            cell_index=exc.cell_index,
            ename=ename,
            evalue=evalue,
            traceback=_clean(traceback),
            notebook=request.output,
        ) from exc
    except Exception as exc:  # the kernel, not the notebook, failed: classify why
        elapsed = time.monotonic() - started
        if handle.reason == "timeout" or isinstance(exc, CellTimeoutError | TimeoutError):
            raise StepFailed(
                request.step,
                f"timed out after {elapsed:.1f}s (timeout: {request.timeout}s) {watch.running()}",
                kind="timeout",
                cell_index=watch.index,
                notebook=request.output,
            ) from exc
        if handle.reason == "interrupted":
            raise StepFailed(
                request.step, "interrupted", kind="interrupted", notebook=request.output
            ) from exc
        if isinstance(exc, NoSuchKernel):
            raise StepFailed(
                request.step,
                f"no Jupyter kernel named {request.kernel!r} is installed for {sys.executable}",
                kind="error",
                notebook=request.output,
                hint=missing_kernel_hint(request.kernel),
            ) from exc
        if isinstance(exc, DeadKernelError):
            raise StepFailed(
                request.step,
                f"the kernel died {watch.running()} (out of memory, a crash in native code, "
                "or os._exit)",
                kind="dead_kernel",
                cell_index=watch.index,
                notebook=request.output,
            ) from exc
        raise StepFailed(
            request.step, f"{type(exc).__name__}: {exc}", kind="error", notebook=request.output
        ) from exc
    finally:
        if timer is not None:
            timer.cancel()
        if km is not None:
            if "MLFLOW_RUN_ID" in request.late_env and process_alive(km):
                run_silent(km, END_MLFLOW_RUN)
            shutdown_in_background(km)
        if partial.exists():
            os.replace(partial, request.output)
    return request.output


def missing_kernel_hint(name: str) -> str:
    """What to do when the steps' kernel is not installed in this environment: usually a
    project created (``toolkit init``) with another Python, or a notebook's own kernel name."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = sorted(KernelSpecManager().find_kernel_specs())
    close = did_you_mean(name, installed)
    return (
        (f"{close} " if close else "")
        + f"installed here: {', '.join(installed) or 'none'}. Install the project's kernel into "
        "this environment with `toolkit init --kernel-only`, or name another one with "
        "`kernel` in [tool.toolkit] of pyproject.toml, TOOLKIT_KERNEL, or a step's `kernel:`"
    )
