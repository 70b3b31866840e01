"""Pre-warmed kernels: start the next steps' kernels, and run their imports, ahead of time.

Importing pandas and scikit-learn costs each kernel seconds, several times a step's real work.
While steps run, the orchestrator keeps a few kernels warming for the steps that come next
(in plan order, skipping the ones the cache will reuse): each is started with that step's
environment and working folder, imports what the notebook imports (or the step's declared
``preload``), and then serves that one step only, so no state leaks between steps.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from toolkit.execute.kernel import KernelHandle, kernel_arguments, kernel_manager_class
from toolkit.execute.kernel_control import (
    execute_silently,
    in_background,
    process_alive,
    stop_kernel,
    wait_for_shutdowns,
)
from toolkit.plan.planned import PlannedStep
from toolkit.specs.notebook_params import PARAMETERS_TAG, code_cells
from toolkit.specs.notebook_source import read_notebook


class WarmKernel:
    """A kernel started before its step runs, with the step's environment and working folder,
    that has already run ``preload`` (the notebook's imports), so they leave the critical path.

    Each warm kernel serves exactly one execution, then is shut down: no state can leak from
    one step into another. A preload that fails is ignored; the notebook's own cells will raise
    the same error where the user expects it.
    """

    def __init__(
        self,
        kernel: str,
        cwd: Path,
        env: Mapping[str, str],
        preload: str,
        startup: float = 60,
        stderr: Path | None = None,
    ) -> None:
        self.handle = KernelHandle()
        self._stderr = stderr
        self._km: Any = None
        self._ready = threading.Event()
        self._taken = False
        self._lock = threading.Lock()
        self._args = (kernel, cwd, dict(env), preload, startup)
        threading.Thread(target=self._start, name="toolkit-warm", daemon=True).start()

    def _start(self) -> None:
        import asyncio

        try:
            asyncio.run(self._astart(*self._args))
        except Exception:
            self._shutdown_now()  # a kernel that can't start warm will start the normal way
        finally:
            self._ready.set()

    async def _astart(
        self, kernel: str, cwd: Path, env: dict[str, str], preload: str, startup: float
    ) -> None:
        km = kernel_manager_class(env, self.handle, self._stderr)(kernel_name=kernel)
        with self._lock:
            self._km = km
        await km.start_kernel(cwd=str(cwd), extra_arguments=kernel_arguments())
        await execute_silently(km, preload, timeout=startup)

    def wait_ready(self, timeout: float = 120) -> bool:
        return self._ready.wait(timeout)

    def take(self, timeout: float = 120) -> Any | None:
        """The ready kernel's manager, for one execution; None if it failed to start."""
        if not self._ready.wait(timeout):
            self.discard()
            return None
        with self._lock:
            km, self._taken = self._km, True
        alive = km is not None and km.has_kernel and self.handle.reason is None
        return km if alive and process_alive(km) else None

    def discard(self) -> None:
        """Shut the kernel down in the background (it was not needed after all)."""
        with self._lock:
            self._taken = True
        in_background(self._shutdown_after_start)

    def _shutdown_after_start(self) -> None:
        self._ready.wait(120)
        self._shutdown_now()

    def _shutdown_now(self) -> None:
        with self._lock:
            km = self._km
        if km is not None:
            # It never ran a cell of the user's, only imports: nothing to flush, so no need
            # for the graceful handshake (0.5 s with pandas loaded).
            stop_kernel(km, now=True)


def preload_code(step: PlannedStep) -> str:
    """Code that imports what the step will import, with no other effect on its namespace.

    The imports run inside a function, each guarded, so names don't appear in the notebook's
    globals and an import that fails here fails again, visibly, in the notebook's own cell.
    """
    if step.preload is not None:
        statements = [f"import {module}" for module in step.preload]
    else:
        statements = _notebook_imports(step.notebook)
    if not statements:
        return ""
    body = "".join(
        f"    try:\n        {s}\n    except Exception:\n        pass\n" for s in statements
    )
    return f"def __toolkit_preload():\n{body}__toolkit_preload()\ndel __toolkit_preload\n"


def _notebook_imports(path: Path) -> list[str]:
    try:
        nb = read_notebook(path)
    except (OSError, ValueError):
        return []
    found: list[str] = []
    for _, source, tags in code_cells(nb):
        if PARAMETERS_TAG in tags:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics: not plain Python, nothing to learn from the cell
            continue
        for node in tree.body:
            if isinstance(node, ast.Import) or (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and all(alias.name != "*" for alias in node.names)
            ):
                statement = ast.unparse(node)
                if statement not in found:
                    found.append(statement)
    return found


class KernelPool:
    """Keeps up to ``size`` kernels warm for the next steps; hands each to its step once.

    Kernels are started one after the other, in plan order: on a small machine, starting them
    all at once would slow the kernel the next step needs by the ones needed later.
    """

    def __init__(
        self, kernel: str, size: int, env_for: Callable[[PlannedStep], Mapping[str, str]]
    ) -> None:
        self.kernel = kernel
        self.size = size
        self.env_for = env_for
        self._warm: dict[str, WarmKernel] = {}
        self._queue: list[PlannedStep] = []
        self._served: set[str] = set()
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._closed = False

    def warm(self, upcoming: Iterable[PlannedStep]) -> None:
        """Make sure the first ``size`` of ``upcoming`` have a kernel ready or on its way."""
        with self._lock:
            if self._closed:
                return
            for step in list(upcoming)[: self.size]:
                known = step.name in self._warm or step.name in self._served
                if known or any(q.name == step.name for q in self._queue):
                    continue
                self._queue.append(step)
            if self._queue and (self._starter is None or not self._starter.is_alive()):
                self._starter = threading.Thread(
                    target=self._start_queued, name="toolkit-warm-pool", daemon=True
                )
                self._starter.start()

    def _start_queued(self) -> None:
        while True:
            with self._lock:
                if self._closed or not self._queue:
                    return
                step = self._queue.pop(0)
                env = self.env_for(step)
                log = env.get("TOOLKIT_KERNEL_LOG")
                kernel = WarmKernel(
                    step.kernel or self.kernel,
                    step.workdir,
                    env,
                    preload_code(step),
                    stderr=Path(log) if log else None,
                )
                self._warm[step.name] = kernel
            kernel.wait_ready()

    def take(self, step: str) -> WarmKernel | None:
        """The step's warm kernel, if one was started (at most once per step)."""
        with self._lock:
            self._served.add(step)
            self._queue = [q for q in self._queue if q.name != step]
            return self._warm.pop(step, None)

    def close(self) -> None:
        """Shut down the kernels nobody took, and wait for every shutdown to finish."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            leftovers, self._warm = list(self._warm.values()), {}
        for kernel in leftovers:
            kernel.discard()
        wait_for_shutdowns()
