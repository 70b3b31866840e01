"""Where a run came from and what it touched: code version, machine, scheduler and data.

Everything here is best effort on purpose. A pipeline must run outside git, without a ``git``
binary, in a container without a passwd entry: missing facts become ``None``, never errors.
No MLflow here; :mod:`toolkit.tracking` decides how these facts are logged.

Re-exports the modules' public names so that ``from toolkit.core.lineage import ...`` keeps
working: the code version is :mod:`toolkit.core.git`, the machine
:mod:`toolkit.core.lineage.machine`, the scheduler :mod:`toolkit.core.lineage.scheduler` and
the data :mod:`toolkit.core.lineage.datafiles`.
"""

from toolkit.core.git import GitInfo, git_info
from toolkit.core.lineage.datafiles import fingerprint, spec_hash
from toolkit.core.lineage.machine import (
    JUPYTER_IMPORT_LOCK,
    LOCK_FILES,
    current_user,
    environment,
    installed_packages,
    kernel_interpreter,
    lock_info,
)
from toolkit.core.lineage.scheduler import CONTEXT_PREFIX, scheduler_context

__all__ = [
    "CONTEXT_PREFIX",
    "JUPYTER_IMPORT_LOCK",
    "LOCK_FILES",
    "GitInfo",
    "current_user",
    "environment",
    "fingerprint",
    "git_info",
    "installed_packages",
    "kernel_interpreter",
    "lock_info",
    "scheduler_context",
    "spec_hash",
]
