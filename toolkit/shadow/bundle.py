"""A release bundle: one pyfunc holding the champion and its shadow, for plain
``mlflow models serve``. Each request is answered by the champion, exactly as the champion's
own model answers it; the same records are then scored by the shadow on a worker thread, off
the response path, and its decisions appended to a decision log (JSON Lines, one line per
record, ``shadow: true``). A shadow that raises leaves the response intact: the failure is a
line of the log.

The log's path is fixed when the bundle is built and can be overridden where it is served by
the ``TOOLKIT_DECISION_LOG`` environment variable. Like the guard, this module travels inside
the model by value (:func:`log_bundle`): serving needs no toolkit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from toolkit.core.jsonable import dumps

LOG_ENV = "TOOLKIT_DECISION_LOG"
KEPT = ("prediction", "probability", "path", "reason", "version", "confidence", "input_hash")


class ReleaseBundle:
    """Champion and shadow guards as one MLflow pyfunc (a callable taking one DataFrame)."""

    def __init__(
        self, champion: Any, shadow: Any, *, decision_log: str, versions: dict[str, str]
    ) -> None:
        self.champion, self.shadow = champion, shadow
        self.decision_log, self.versions = decision_log, dict(versions)
        self.version = getattr(champion, "version", "")  # what MLflow tags and callers see
        self.model_name = getattr(champion, "model_name", "")
        self.input_example = getattr(champion, "input_example", None)
        self._queue: queue.Queue[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_queue"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._queue = None

    def describe(self) -> dict[str, Any]:
        champion = self.champion.describe() if hasattr(self.champion, "describe") else {}
        return {**champion, "release_bundle": {**self.versions, "decision_log": self.decision_log}}

    def __call__(self, model_input: Any) -> Any:
        """The champion's answer; the shadow's scoring is queued for the worker thread."""
        out = self.champion(model_input)
        with contextlib.suppress(Exception):  # nothing about the shadow may touch the answer
            self._worker().put_nowait((model_input, out))
        return out

    def log_path(self) -> str:
        return os.environ.get(LOG_ENV) or self.decision_log

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued request has been shadowed (tests, shutdown)."""
        if self._queue is None:
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _worker(self) -> queue.Queue[Any]:
        if self._queue is None:
            self._queue = queue.Queue(maxsize=1000)  # a stuck shadow drops work, never blocks
            threading.Thread(target=self._run, name="toolkit-shadow", daemon=True).start()
        return self._queue

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            records, served = self._queue.get()
            try:
                self._append(self._shadow_lines(records, served))
            except Exception as exc:  # a full disk: the request was answered anyway
                with contextlib.suppress(Exception):
                    self._append(iter([self._failure(exc)]))
            finally:
                self._queue.task_done()

    def _shadow_lines(self, records: Any, served: Any) -> Iterator[dict[str, Any]]:
        start = time.perf_counter()
        try:
            out = self.shadow.predict(records)
        except Exception as exc:
            yield self._failure(exc)
            return
        ms = (time.perf_counter() - start) * 1000
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        for i in range(len(out)):
            row, champ = out.iloc[i], served.iloc[i]
            yield {
                "at": at, "shadow": True, "model": self.model_name, **self.versions,
                "latency_ms": ms, "decision": _plain(row), "champion": _plain(champ),
            }  # fmt: skip

    def _failure(self, exc: BaseException) -> dict[str, Any]:
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        return {"at": at, "shadow": True, "model": self.model_name, **self.versions,
                "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip

    def _append(self, lines: Iterator[dict[str, Any]]) -> None:
        text = "".join(dumps(line) + "\n" for line in lines)
        path = self.log_path()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)


def _plain(row: Any) -> dict[str, Any]:
    out = {}
    for key in KEPT:
        value = row.get(key)
        if value is not None and value != value:  # NaN
            value = None
        out[key] = value.item() if hasattr(value, "item") else value
    return out
