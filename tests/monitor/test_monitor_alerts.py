"""Alert hooks for real: a webhook server on loopback, an unreachable port, shell commands."""

from __future__ import annotations

import json
import shlex
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.core.errors import ExitCode, MonitorAlert
from toolkit.monitor import (
    CommandHook,
    MonitorResult,
    WebhookHook,
    build_profile,
    fire_alerts,
    hooks_from_dict,
    monitor_batch,
)

RUN_LINK = "http://127.0.0.1:5000/#/experiments/1/runs/abc"


class _Receiver:
    """A loopback HTTP server that records every request and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _closed_port() -> int:
    """A loopback port nobody listens on: bound by us, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _batch(rng: np.random.Generator, rows: int, scale: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"sensor": rng.normal(20.0, 4.0, rows) * scale, "kind": rng.choice(["a", "b"], rows)}
    )


@pytest.fixture(scope="module")
def results() -> Iterator[tuple[MonitorResult, MonitorResult]]:
    """(an alerting result, a clean one) for model 'churn' v3."""
    rng = np.random.default_rng(3)
    reference = build_profile(_batch(rng, 20_000, 1.0))

    def run(name: str, scale: float) -> MonitorResult:
        return monitor_batch(
            _batch(rng, 3_000, scale),
            reference,
            model="churn",
            version="3",
            batch_name=name,
            run_link=RUN_LINK,
        )

    yield run("2026-11-25", 1.3), run("2026-11-24", 1.0)


def test_webhook_receives_exactly_one_well_formed_alert(
    results: tuple[MonitorResult, MonitorResult],
) -> None:
    alerting, _ = results
    with _Receiver() as receiver:
        outcomes = fire_alerts(alerting, [WebhookHook(receiver.url, timeout_s=10)])
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/hooks/secret-token"
    assert request["headers"]["Content-Type"] == "application/json"
    payload = json.loads(request["body"])
    assert payload["status"] == "alert" and payload["source"] == "toolkit.monitor"
    assert (payload["model"], payload["version"], payload["batch"]) == ("churn", "3", "2026-11-25")
    assert payload["run_link"] == RUN_LINK
    assert payload["metric"] in {"drift.psi.sensor", "drift.ks.sensor"}
    assert payload["value"] >= payload["threshold"] > 0
    assert {b["metric"] for b in payload["breaches"]} >= {"drift.psi.sensor"}
    assert "churn v3" in payload["text"]
    assert [(o.kind, o.ok, o.detail) for o in outcomes] == [("webhook", True, "HTTP 200")]
    assert "secret-token" not in outcomes[0].hook  # the URL's path may be a credential


def test_unreachable_webhook_is_reported_and_the_alert_stands(
    results: tuple[MonitorResult, MonitorResult],
) -> None:
    alerting, _ = results
    url = f"http://127.0.0.1:{_closed_port()}/alerts"
    with _Receiver(status=500) as failing:
        outcomes = fire_alerts(alerting, [WebhookHook(url, timeout_s=5), WebhookHook(failing.url)])
    assert [o.ok for o in outcomes] == [False, False]
    assert "cannot deliver" in outcomes[0].detail
    assert outcomes[1].detail.startswith("HTTP 500")
    assert alerting.alert and alerting.status == "alert"
    with pytest.raises(MonitorAlert, match="sensor") as info:
        alerting.raise_for_alert(report="runs/x/drift_report.html")
    assert info.value.exit_code == ExitCode.ALERT == 5
    assert "drift_report.html" in str(info.value)


def test_no_alert_fires_nothing(results: tuple[MonitorResult, MonitorResult]) -> None:
    _, clean = results
    assert clean.status == "ok"
    with _Receiver() as receiver:
        assert fire_alerts(clean, [WebhookHook(receiver.url)]) == []
    assert receiver.requests == []
    clean.raise_for_alert()  # does not raise


def test_command_hook_gets_the_payload_on_stdin_and_in_the_environment(
    results: tuple[MonitorResult, MonitorResult], tmp_path: Path
) -> None:
    alerting, _ = results
    stdin_file, env_file = tmp_path / "stdin.json", tmp_path / "env.json"
    command = (
        f"cat > {shlex.quote(str(stdin_file))}; "
        f'printf "%s" "$TOOLKIT_ALERT_JSON" > {shlex.quote(str(env_file))}'
    )
    outcomes = fire_alerts(alerting, hooks_from_dict({"command": command}))
    assert [(o.kind, o.ok, o.detail) for o in outcomes] == [("command", True, "exit 0")]
    from_stdin = json.loads(stdin_file.read_text())
    assert from_stdin == json.loads(env_file.read_text()) == alerting.payload()
    assert from_stdin["model"] == "churn" and from_stdin["status"] == "alert"


def test_failing_and_hanging_commands_are_reported(
    results: tuple[MonitorResult, MonitorResult],
) -> None:
    alerting, _ = results
    hooks = [
        CommandHook("echo 'pager is down' >&2; exit 3"),
        CommandHook("sleep 30 & sleep 30", timeout_s=0.5),  # a child in the background too
    ]
    failed, hung = fire_alerts(alerting, hooks)
    assert (failed.ok, failed.detail) == (False, "exit 3: pager is down")
    assert not hung.ok and "timed out" in hung.detail


def test_hook_configuration_errors_are_clear() -> None:
    from toolkit.core.errors import SpecError, UsageError

    with pytest.raises(UsageError, match="http"):
        WebhookHook("file:///etc/passwd")
    with pytest.raises(SpecError, match="unknown alert setting"):
        hooks_from_dict({"slack": "x"})
    hooks = hooks_from_dict({"webhook": ["http://127.0.0.1:1/a"], "timeout_s": 2})
    assert hooks == [WebhookHook("http://127.0.0.1:1/a", timeout_s=2.0)]
