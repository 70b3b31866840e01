"""An alert hook that hangs, dies or misbehaves never blocks the monitor nor hides the alert.

Real sockets on loopback play the broken receivers; :func:`toolkit.monitor.alerts.deliver`
(what ``toolkit monitor`` calls for an alerting batch) must come back with a failed outcome
for that hook and still deliver to the healthy one after it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from toolkit.monitor.alerts import CommandHook, WebhookHook, deliver

PAYLOAD = {"model": "m", "version": "3", "status": "alert", "breaches": [{"metric": "psi"}]}


@contextlib.contextmanager
def raw_server(behaviour: Callable[[socket.socket], None] | None) -> Iterator[str]:
    """A TCP listener on loopback: ``behaviour(conn)`` for each connection, or (None) never
    accept at all; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            if behaviour is not None:
                threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    if behaviour is not None:
        threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        for conn in conns:
            conn.close()
        listener.close()


def _silent(conn: socket.socket) -> None:
    conn.recv(65536)  # read the request, then never answer


def _headers_then_stall(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok")  # 98 bytes never come


def _drip(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 2")  # a status line that never ends


def _reset(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # RST instead of an answer


HANGS = {
    "accepts and never answers": _silent,
    "sends headers then stalls the body": _headers_then_stall,
    "never finishes its status line": _drip,
    "resets the connection": _reset,
    "never accepts the connection (full backlog)": None,
}


@contextlib.contextmanager
def healthy_receiver() -> Iterator[tuple[str, list[bytes]]]:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ok", got
    finally:
        server.shutdown()
        server.server_close()


def _fill_backlog(url: str) -> list[socket.socket]:
    """Connect until the listener's queue is full, so the next connect hangs."""
    port = int(url.split(":")[2].split("/")[0])
    fillers = []
    for _ in range(8):
        conn = socket.socket()
        conn.settimeout(0.3)
        try:
            conn.connect(("127.0.0.1", port))
        except OSError:
            conn.close()
            break
        fillers.append(conn)
    return fillers


@pytest.mark.parametrize("hang", list(HANGS))
def test_a_hung_webhook_fails_alone_and_the_next_hook_still_gets_the_alert(hang: str) -> None:
    """A webhook receiver that misbehaves this way: its outcome is a failure that says so,
    deliver() returns, and the healthy webhook after it receives the alert exactly once."""
    with raw_server(HANGS[hang]) as bad_url, healthy_receiver() as (good_url, got):
        fillers = _fill_backlog(bad_url) if HANGS[hang] is None else []
        try:
            outcomes = deliver(
                PAYLOAD, [WebhookHook(bad_url, timeout_s=1.0), WebhookHook(good_url, timeout_s=5.0)]
            )
        finally:
            for conn in fillers:
                conn.close()
    assert [o.ok for o in outcomes] == [False, True], outcomes
    assert outcomes[0].detail, outcomes[0]
    assert len(got) == 1 and b'"model": "m"' in got[0]


@pytest.mark.parametrize(
    "command",
    ["sleep 600", "sh -c 'sleep 600 & wait'", "cat > /dev/null; kill -9 $$"],
    ids=["hangs", "hangs in a child process", "dies by SIGKILL"],
)
def test_a_broken_alert_command_is_reported_and_killed(command: str) -> None:
    """An alert command that hangs (itself or through a child) is killed after its timeout
    with its whole group; one that dies is reported; the alert outcome says which."""
    outcomes = deliver(PAYLOAD, [CommandHook(command, timeout_s=1.0)])
    assert len(outcomes) == 1 and outcomes[0].ok is False
    assert "timed out" in outcomes[0].detail or "exit -9" in outcomes[0].detail, outcomes[0]
