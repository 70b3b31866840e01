"""The kernels a plan's steps name must be installed, checked before anything runs."""

from __future__ import annotations

from toolkit.core.errors import SpecError, did_you_mean
from toolkit.specs.models import Pipeline


def installed_kernels() -> list[str]:
    """Names of the Jupyter kernelspecs this environment can start."""
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())


def check_kernels(spec: Pipeline) -> None:
    """A step's ``kernel:`` must name an installed kernelspec, before anything runs."""
    wanted = [(i, s) for i, s in enumerate(spec.steps) if s.kernel]
    if not wanted:
        return  # jupyter_client stays unimported on the common path
    known = installed_kernels()
    for i, step in wanted:
        if step.kernel not in known:
            raise SpecError(
                f"unknown kernel {step.kernel!r}; installed kernelspecs: {', '.join(known)}",
                path=spec.source,
                location=f"steps[{i}]({step.name}).kernel",
                hint=did_you_mean(step.kernel or "", known)
                or "install one with `python -m ipykernel install --sys-prefix --name NAME`",
            )
