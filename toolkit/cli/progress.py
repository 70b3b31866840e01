"""Progress lines for ``toolkit run``: colour on a terminal, plain text in a log."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class ProgressPrinter:
    """Streams run events to stderr: symbols and colour on a terminal, plain lines in a log."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()

    def _paint(self, text: str, colour: str) -> str:
        codes = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "cyan": "36"}
        return f"\x1b[{codes[colour]}m{text}\x1b[0m" if self.tty else text

    def __call__(self, event: Any) -> None:
        stamp = time.strftime("%H:%M:%S")
        elapsed = f"+{time.monotonic() - self.t0:5.1f}s"
        if event.kind == "run_started":
            line = f"run {event.message}"
        elif event.kind == "step_started":
            line = self._paint(f"> {event.step} started", "cyan")
        elif event.kind == "step_retry":
            line = self._paint(f"~ {event.step} failed, retrying: {event.message}", "yellow")
        elif event.kind == "step_finished":
            colour = {"succeeded": "green", "failed": "red"}.get(event.status or "", "yellow")
            mark = {"succeeded": "ok", "failed": "FAILED"}.get(event.status or "", event.status)
            detail = f": {event.message}" if event.message else ""
            line = self._paint(f"{mark} {event.step}{detail}", colour)
        elif event.kind == "up_to_date":
            line = self._paint(f"= {event.message}", "green")
        elif event.kind == "output":
            line = f"[{event.step}] {event.message}"
        elif event.kind == "run_finished":
            line = f"run {event.status}"
        else:
            line = f"{event.kind} {event.step or ''} {event.message}".strip()
        prefix = self._paint(f"{stamp} {elapsed}", "dim")
        print(f"{prefix} {line}", file=self.stream, flush=True)
