"""The machine a run ran on: user, host, interpreter, installed packages, the project's lock
file and the interpreter of a Jupyter kernel. Best effort: a missing fact is None, never an error.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from toolkit.core.fsutil import sha256_file


def current_user() -> str | None:
    """Login name; containers running as an arbitrary uid have none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return None


def installed_packages() -> dict[str, str]:
    """``{distribution: version}`` of the running interpreter, sorted by normalised name."""
    from importlib import metadata  # lazy: ~15 ms, only needed once per pipeline run

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        # The typed PackageMetadata has no .get; a missing Name still reads as None.
        meta = dist.metadata
        name = meta["Name"] if meta and "Name" in meta else None
        if name:
            # PEP 503 normalisation so `Foo_Bar` and `foo-bar` are one entry; first one wins,
            # which matches the import system's sys.path order.
            found.setdefault(name.lower().replace("_", "-").replace(".", "-"), dist.version)
    return dict(sorted(found.items()))


#: Lock files, most specific first: the first one found at the project root pins the run.
LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock", "requirements.lock")


def lock_info(root: Path | None) -> dict[str, str] | None:
    """``{"file", "sha256"}`` of the project's dependency lock, or None without one.

    The hash names the exact set of pinned distributions: two runs with the same lock hash were
    meant to run on the same packages, whatever ``packages`` says was really installed.
    """
    if root is None:
        return None
    for name in LOCK_FILES:
        path = Path(root) / name
        if path.is_file():
            try:
                return {"file": name, "sha256": sha256_file(path)}
            except OSError:
                return None
    return None


# Held for the first import of jupyter_client in a process. Its modules import each other, and
# two threads importing it at once (this module's environment thread and a step's thread in
# toolkit.execute.kernel, which takes the same lock) leave one with a half-initialised module:
# "cannot import name 'AsyncKernelManager' from partially initialized module".
JUPYTER_IMPORT_LOCK = threading.Lock()


def kernel_interpreter(kernel: str | None) -> dict[str, str | None] | None:
    """The interpreter a Jupyter kernel runs: ``{"kernel", "argv0", "executable"}``.

    The notebooks run there, not in the orchestrator's interpreter. A kernelspec whose command is
    plain ``python`` is started with the orchestrator's own interpreter (jupyter_client's rule),
    so that is what is recorded for it.
    """
    if not kernel:
        return None
    try:
        with JUPYTER_IMPORT_LOCK:
            from jupyter_client.kernelspec import KernelSpecManager  # lazy: jupyter's import cost

        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except Exception:  # no such kernel, no jupyter_client: the run reports it elsewhere
        return {"kernel": kernel, "argv0": None, "executable": None}
    argv0 = argv[0] if argv else None
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if argv0 in bare:
        executable: str | None = sys.executable
    else:
        import shutil

        executable = shutil.which(argv0) if argv0 else None
    return {"kernel": kernel, "argv0": argv0, "executable": executable}


def environment(
    *, packages: bool = True, root: Path | None = None, kernel: str | None = None
) -> dict[str, Any]:
    """User, host, interpreter and (optionally) installed packages: logged once per run.

    With ``root``, the hash of the project's lock file (``lock``); with ``kernel``, the
    interpreter that kernel runs (``kernel_interpreter``).
    """
    info: dict[str, Any] = {
        "user": current_user(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "pid": os.getpid(),
    }
    if root is not None:
        info["lock"] = lock_info(root)
    if kernel is not None:
        info["kernel_interpreter"] = kernel_interpreter(kernel)
    if packages:
        info["packages"] = installed_packages()
    return info
