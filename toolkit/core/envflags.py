"""On/off switches read from the environment, one way for every switch.

``1``, ``true``, ``yes`` and ``on`` turn a switch on; ``0``, ``false``, ``no`` and ``off`` turn
it off, in any case and with blanks around them. Anything else, unset included, leaves the
switch to its default, so a typo never flips one.

Variables other tools set to say where we run (``CI``) are markers, not switches: CI services
write ``true``, ``1`` or their own name, so any value but an off one counts as set. Before this
module, the daemon and the scheduler context read ``CI`` with different sets of values and could
disagree about the same environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ON = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"0", "false", "no", "off"})


def _value(name: str, env: Mapping[str, str] | None) -> str:
    return (os.environ if env is None else env).get(name, "").strip().lower()


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool | None:
    """True or False when ``name`` says on or off; None when it is unset or says neither."""
    value = _value(name, env)
    return True if value in ON else False if value in OFF else None


def env_marker(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether another tool's marker ``name`` (``CI``) is set: any value but blank or an off one."""
    value = _value(name, env)
    return bool(value) and value not in OFF
