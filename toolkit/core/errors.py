"""The toolkit's error hierarchy and its stable exit codes.

Every expected failure is a :class:`ToolkitError`. The CLI has one error boundary that prints
``str(error)`` and exits with ``error.exit_code``; anything else is a bug and gets a traceback
only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes are part of the public interface: schedulers branch on them."""

    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    CONTRACT = 3
    GATE = 4
    ALERT = 5
    LOCKED = 6
    REPRODUCED_WITHIN_TOLERANCE = 7
    NOT_REPRODUCED = 8
    INTERRUPTED = 130


class ToolkitError(Exception):
    """Root of every error the toolkit raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(ToolkitError):
    """The command line asked for something that cannot be done."""


class SpecError(ToolkitError):
    """A pipeline spec is missing, unreadable or invalid.

    ``path`` is the spec file and ``location`` the dotted field path inside it, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        location: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(path) if path is not None else ""
        if location:
            where = f"{where}: {location}" if where else location
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.location = location


class NotebookError(ToolkitError):
    """A notebook is missing or malformed (for example, no ``parameters`` cell)."""


class StepFailed(ToolkitError):
    """A step failed while executing: a cell raised, the kernel died, or it timed out."""

    exit_code = ExitCode.STEP_FAILED

    def __init__(
        self,
        step: str,
        reason: str,
        *,
        kind: str = "error",
        cell_index: int | None = None,
        ename: str | None = None,
        evalue: str | None = None,
        traceback: str | None = None,
        notebook: object | None = None,
        details: list[str] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"step {step!r} failed: {reason}", hint=hint)
        self.details = details or []
        self.step = step
        self.reason = reason
        self.kind = kind
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.notebook = notebook


class ContractError(ToolkitError):
    """A contract suite or the data to validate could not be loaded (a usage problem)."""


class ContractViolation(ToolkitError):
    """Data broke a contract whose ``on_fail`` is ``error``."""

    exit_code = ExitCode.CONTRACT


class TrackingError(ToolkitError):
    """The tracking backend could not be reached or refused a request."""

    exit_code = ExitCode.STEP_FAILED


class GateFailed(ToolkitError):
    """A release gate failed."""

    exit_code = ExitCode.GATE


class RegistryError(ToolkitError):
    """A registry request is invalid: unknown model or version, policy not met."""


class PermissionRefused(RegistryError):
    """The system's identity is not allowed to do this: unauthenticated, no permission on the
    server, or a name that is not the caller's own."""


class MonitorAlert(ToolkitError):
    """Monitoring found a breach of a threshold."""

    exit_code = ExitCode.ALERT


class LockedError(ToolkitError):
    """Another run of the same pipeline holds the project's lock."""

    exit_code = ExitCode.LOCKED


class Interrupted(ToolkitError):
    """The run was stopped by SIGINT or SIGTERM."""

    exit_code = ExitCode.INTERRUPTED


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a "did you mean ...?" hint for a misspelt ``word``, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?"
