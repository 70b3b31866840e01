"""Live forwarding of a step's metrics from its events file to its MLflow run."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.errors import TrackingError
from toolkit.tracking.vocabulary import Metric, valid_metric_key

if TYPE_CHECKING:
    from toolkit.tracking.client import Tracker
    from toolkit.tracking.remote import RemoteTracker

log = logging.getLogger(__name__)


class MetricsForwarder:
    """Tails a step's JSON-lines events file and forwards metric events to its run, live.

    The notebook appends one JSON object per line; a line is only consumed once its newline
    has arrived, so a half-written last line is simply read on the next poll. Forwarding errors
    never stop the step: pending metrics are retried on the next poll, and the last failure is
    kept in :attr:`error` (and logged) for the runner to report.
    """

    def __init__(
        self,
        tracker: Tracker | RemoteTracker,
        run_id: str,
        events_path: Path,
        poll_interval: float = 0.5,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.events_path = Path(events_path)
        self.poll_interval = poll_interval
        self.events: list[dict[str, Any]] = []
        self.error: TrackingError | None = None
        self._offset = 0
        self._partial = b""
        self._pending: list[Metric] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsForwarder:
        self._thread = threading.Thread(
            target=self._loop, name=f"metrics-{self.run_id[:8]}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop tailing, forward whatever is left (a final unterminated line included if it
        is complete JSON) and return every event read, in file order."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._poll(final=True)
        return list(self.events)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self._poll(final=False)

    def _poll(self, *, final: bool) -> None:
        try:
            with self.events_path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:  # the notebook has not logged anything yet
            chunk = b""
        except OSError as exc:
            log.warning("cannot read %s: %s", self.events_path, exc)
            chunk = b""
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when data ended with a newline
        if final and self._partial.strip():
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._accept(line, last=final and line is lines[-1])
        self._flush()

    def _accept(self, line: bytes, *, last: bool) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:
            if not last:  # a torn final line is expected after a crash; anything else is odd
                log.warning("skipping malformed event line in %s", self.events_path)
            return
        if not isinstance(event, dict):
            return
        self.events.append(event)
        if event.get("kind") == "metric":
            try:
                key, value = str(event["key"]), float(event["value"])
                step = event.get("step")
                ts = event.get("ts", event.get("timestamp"))
                metric = (
                    key,
                    value,
                    None if step is None else int(step),
                    None if ts is None else int(ts),
                )
            except (KeyError, TypeError, ValueError):
                metric = None
            # One bad key would make MLflow reject the whole batch on every retry.
            if metric is None or not valid_metric_key(key) or (metric[3] or 0) < 0:
                log.warning("skipping invalid metric event %r", event)
            else:
                self._pending.append(metric)

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self.tracker.log_metrics(self.run_id, pending)
        except TrackingError as exc:
            self._pending = pending + self._pending  # retried on the next poll
            self.error = exc
            log.warning("metrics for run %s not forwarded yet: %s", self.run_id, exc)
