"""Alert hooks: a shell command and/or a webhook, told once per alerting batch.

Each hook gets the same JSON payload (see :meth:`MonitorResult.payload
<toolkit.monitor.core.MonitorResult.payload>`). Delivery is bounded in time and never raises:
a hook that fails is returned as a failed :class:`HookOutcome`, next to the alert it failed to
deliver, so a broken pager can never hide a breach (the caller still exits 5).

* **command**: run by ``/bin/sh -c`` in its own process group; the payload arrives on stdin
  and in the ``TOOLKIT_ALERT_JSON`` environment variable. On timeout the whole group is killed.
* **webhook**: a JSON ``POST`` with urllib. The request runs in a worker thread joined with the
  timeout, because a socket timeout alone does not bound DNS resolution. Loopback URLs bypass
  any ``*_proxy`` environment variables; other URLs honour them.

URLs may carry secrets (a Slack webhook's path is its token), so outcomes name a webhook by
scheme and host only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from toolkit.core.errors import SpecError, UsageError
from toolkit.core.jsonable import jsonable

#: Linux refuses an environment string over 128 KiB; past this the env copy is shortened.
_ENV_LIMIT = 100_000
_TAIL = 500  # characters of a failing command's stderr kept in its outcome


@dataclass(frozen=True)
class WebhookHook:
    """POST the payload as JSON to ``url`` (http or https)."""

    url: str
    timeout_s: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"webhook URL must be http(s)://host/...: {redact(self.url)!r}",
                hint="for example --webhook https://hooks.example.com/alerts",
            )

    @property
    def label(self) -> str:
        return f"webhook {redact(self.url)}"


@dataclass(frozen=True)
class CommandHook:
    """Run ``command`` through the shell with the payload on stdin and in the environment."""

    command: str
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise UsageError("the alert command is empty")

    @property
    def label(self) -> str:
        text = " ".join(self.command.split())
        return f"command {text if len(text) <= 60 else text[:57] + '...'}"


AlertHook = WebhookHook | CommandHook


@dataclass(frozen=True)
class HookOutcome:
    """What became of one hook: delivered or not, and why."""

    hook: str  # the hook's label (a webhook's URL is redacted)
    kind: Literal["webhook", "command"]
    ok: bool
    detail: str  # "HTTP 200", "exit 0", or the failure

    def to_dict(self) -> dict[str, Any]:
        return {"hook": self.hook, "kind": self.kind, "ok": self.ok, "detail": self.detail}


def redact(url: str) -> str:
    """``scheme://host[:port]/...``: enough to recognise a webhook, not to call it."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}" if parts.scheme else "<invalid URL>"


def hooks_from_dict(
    config: Mapping[str, Any] | None, *, section: str = "alerts"
) -> list[AlertHook]:
    """Hooks from a plain dict: ``{webhook: URL | [URLs], command: CMD | [CMDs], timeout_s: N}``."""
    config = dict(config or {})
    unknown = sorted(set(config) - {"webhook", "command", "timeout_s"})
    if unknown:
        raise SpecError(f"unknown alert setting(s): {', '.join(unknown)}", location=section)
    timeout = config.get("timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise SpecError(
            f"expected a positive number, got {timeout!r}", location=f"{section}.timeout_s"
        )

    def listed(key: str) -> list[str]:
        value = config.get(key) or []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise SpecError("expected a string or a list of strings", location=f"{section}.{key}")
        return items

    hooks: list[AlertHook] = [
        WebhookHook(url) if timeout is None else WebhookHook(url, timeout_s=float(timeout))
        for url in listed("webhook")
    ]
    hooks += [
        CommandHook(cmd) if timeout is None else CommandHook(cmd, timeout_s=float(timeout))
        for cmd in listed("command")
    ]
    return hooks


def alert_hooks(
    config: Mapping[str, Any] | None, webhooks: Iterable[str] = (), commands: Iterable[str] = ()
) -> list[AlertHook]:
    """A command's hooks: the spec's ``alerts:`` and those given with ``--webhook``/``--command``."""
    hooks = hooks_from_dict(config)
    hooks += [WebhookHook(url) for url in webhooks]
    hooks += [CommandHook(cmd) for cmd in commands]
    return hooks


def deliver(payload: Mapping[str, Any], hooks: Sequence[AlertHook]) -> list[HookOutcome]:
    """Fire every hook with ``payload``, one after the other; never raises."""
    payload = jsonable(payload)
    body = json.dumps(payload, default=str, allow_nan=False).encode("utf-8")
    outcomes = []
    for hook in hooks:
        try:
            if isinstance(hook, WebhookHook):
                outcomes.append(post_webhook(hook, body))
            else:
                outcomes.append(run_command(hook, body, payload))
        except Exception as exc:  # a hook must never hide the alert it carries
            kind: Literal["webhook", "command"] = (
                "webhook" if isinstance(hook, WebhookHook) else "command"
            )
            outcomes.append(HookOutcome(hook.label, kind, False, f"{type(exc).__name__}: {exc}"))
    return outcomes


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected webhook is misconfigured: urllib would re-send the POST as a bodiless GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_webhook(hook: WebhookHook, body: bytes) -> HookOutcome:
    """POST ``body``; 2xx is success, anything else (or no answer in time) a failure."""
    host = urllib.parse.urlsplit(hook.url).hostname or ""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if _is_loopback(host):
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    headers = {"Content-Type": "application/json", "User-Agent": "toolkit-monitor/1"}
    request = urllib.request.Request(
        hook.url, data=body, headers={**headers, **dict(hook.headers)}, method="POST"
    )
    result: list[HookOutcome] = []

    def send() -> None:
        try:
            with opener.open(request, timeout=hook.timeout_s) as response:
                response.read(1024)
                ok = 200 <= response.status < 300
                result.append(HookOutcome(hook.label, "webhook", ok, f"HTTP {response.status}"))
        except urllib.error.HTTPError as exc:
            result.append(
                HookOutcome(hook.label, "webhook", False, f"HTTP {exc.code} {exc.reason}")
            )
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.append(HookOutcome(hook.label, "webhook", False, f"cannot deliver: {reason}"))
        except Exception as exc:  # http.client oddities: report, never raise
            result.append(HookOutcome(hook.label, "webhook", False, f"{type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=send, name="toolkit-webhook", daemon=True)
    worker.start()
    worker.join(hook.timeout_s + 1.0)  # the socket timeout, plus a little for the handshake
    if not result:
        return HookOutcome(hook.label, "webhook", False, f"no answer within {hook.timeout_s:g} s")
    return result[0]


def run_command(hook: CommandHook, body: bytes, payload: Mapping[str, Any]) -> HookOutcome:
    """Run the command with the payload on stdin and in ``TOOLKIT_ALERT_JSON``."""
    text = body.decode("utf-8")
    if len(text) > _ENV_LIMIT:  # stdin keeps the whole payload; the env copy drops the list
        short = {k: v for k, v in payload.items() if k != "breaches"}
        text = json.dumps({**short, "breaches_truncated": True}, default=str)
    env = {
        **os.environ,
        "TOOLKIT_ALERT_JSON": text,
        "TOOLKIT_ALERT_MODEL": str(payload.get("model", "")),
        "TOOLKIT_ALERT_VERSION": str(payload.get("version", "")),
        "TOOLKIT_ALERT_STATUS": str(payload.get("status", "")),
    }
    process = subprocess.Popen(
        hook.command,
        shell=True,  # the user's own configured command: pipes and redirections are the point
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    try:
        _, err = process.communicate(body, timeout=hook.timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return HookOutcome(
            hook.label, "command", False, f"timed out after {hook.timeout_s:g} s (killed)"
        )
    if process.returncode == 0:
        return HookOutcome(hook.label, "command", True, "exit 0")
    tail = err.decode("utf-8", "replace").strip()[-_TAIL:]
    return HookOutcome(
        hook.label, "command", False, f"exit {process.returncode}" + (f": {tail}" if tail else "")
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=5)  # reap; a child that left the group may hold the pipes
