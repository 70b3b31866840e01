"""A project's Jupyter kernel: install it for the Python running the toolkit.

A kernelspec names an interpreter by absolute path, so the kernel a project's steps run in is
the environment the toolkit was installed into, in JupyterLab and under ``toolkit run`` alike.
By default it goes into that environment (``ipykernel install --sys-prefix``): a virtualenv's
own JupyterLab sees it, it leaves with the venv, and two projects in two venvs cannot clash.
Where that prefix is not writable (a system Python) it goes to the user's Jupyter folder.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from toolkit.core.errors import ToolkitError

# jupyter_client accepts these characters only (its kernelspec name pattern).
_KERNEL_NAME = re.compile(r"^[a-z0-9._-]+$")
BUILTIN_KERNELS = frozenset({"python3", "python"})


class KernelInstallError(ToolkitError):
    """The project's kernel cannot be installed (exit 2): a bad name, or the name is taken."""


@dataclass(frozen=True)
class KernelInstall:
    """Where a kernelspec was installed, and for which interpreter."""

    name: str
    display_name: str
    path: Path
    scope: str  # "environment" (sys.prefix) or "user"
    interpreter: str
    reused: bool = False  # the same spec was already there


def kernel_name_for(project: str) -> str:
    """A valid kernelspec name derived from a project name (lower case, ``-`` for the rest)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", project.lower()).strip("-._")
    return name if name and name not in BUILTIN_KERNELS else f"{name or 'project'}-kernel"


def check_kernel_name(name: str) -> str:
    if not _KERNEL_NAME.match(name):
        raise KernelInstallError(
            f"kernel name {name!r} is not valid: use lower-case letters, digits, '.', '_' or '-'",
            hint=f"e.g. --kernel-name {kernel_name_for(name)}",
        )
    return name


def _environment_writable() -> bool:
    target = Path(sys.prefix) / "share" / "jupyter" / "kernels"
    probe = next((p for p in (target, *target.parents) if p.exists()), Path(sys.prefix))
    return os.access(probe, os.W_OK)


def _target(name: str, user: bool) -> Path:
    if user:
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "kernels" / name
    return Path(sys.prefix) / "share" / "jupyter" / "kernels" / name


def _interpreter_of(spec_dir: Path) -> str | None:
    try:
        argv = json.loads((spec_dir / "kernel.json").read_text(encoding="utf-8"))["argv"]
        return str(argv[0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def install_kernel(name: str, display_name: str, *, user: bool | None = None) -> KernelInstall:
    """Install kernelspec ``name`` running this interpreter; ``user=None`` picks the scope.

    An existing spec of that name for this interpreter is kept as it is. One for another
    interpreter is never replaced: that would silently move another project's kernel.

    Raises:
        KernelInstallError: the name is invalid or taken by another interpreter's kernel.
    """
    check_kernel_name(name)
    if user is None:
        user = not _environment_writable()
    target = _target(name, user)
    scope = "user" if user else "environment"
    interpreter = sys.executable
    if target.exists():
        existing = _interpreter_of(target)
        if existing is not None and Path(existing).absolute() == Path(interpreter).absolute():
            return KernelInstall(name, display_name, target, scope, interpreter, reused=True)
        raise KernelInstallError(
            f"a kernel named {name!r} already exists in {target} "
            f"for another Python ({existing or 'unreadable kernel.json'})",
            hint="pick another name with --kernel-name, or remove that kernel with "
            f"`jupyter kernelspec remove {name}` if it is stale",
        )
    from ipykernel.kernelspec import install

    try:
        path = install(
            user=user,
            kernel_name=name,
            display_name=display_name,
            prefix=None if user else sys.prefix,
        )
    except OSError as exc:
        raise KernelInstallError(
            f"cannot install the kernel {name!r} into {target.parent}: {exc.strerror or exc}",
            hint="pass --user-kernel (or --no-kernel to run the steps in 'python3')",
        ) from exc
    return KernelInstall(name, display_name, Path(path), scope, interpreter)


def resolved_interpreter(name: str) -> str | None:
    """The interpreter Jupyter would start for kernel ``name`` here, or None if unknown."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return str(spec.argv[0]) if spec.argv else None
