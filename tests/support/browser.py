"""Shared helpers of the browser tests: Debian's headless Chromium through Playwright.

Playwright's own browser download cannot work offline, so the tests drive ``/usr/bin/chromium``
(``make browser-deps`` installs it) and skip with a reason when it or Playwright is missing.
Chromium is started with the flags that keep it from reaching Google's services and a fresh
profile, and every request it makes is recorded so tests can prove a page stays on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TOOLKIT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def require_chromium() -> None:
    """Skip the calling test unless Playwright and a Chromium binary are available."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium, "
            "or `make browser-deps`)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need Playwright: pip install -e '.[dev]'")


def artifacts_dir() -> Path:
    """Where screenshots go: ``$TOOLKIT_TEST_ARTIFACTS`` or ``tests/artifacts`` (git-ignored)."""
    path = Path(os.environ.get("TOOLKIT_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_local(url: str) -> bool:
    """True for URLs that do not leave the machine: file:, data:, blob:, about:, loopback."""
    parsed = urlparse(url)
    if parsed.scheme in {"file", "data", "blob", "about", "chrome-error"}:
        return True
    return parsed.scheme in {"http", "https", "ws", "wss"} and parsed.hostname in LOCAL_HOSTS


@dataclass
class Browser:
    """One page of a fresh headless Chromium, with every request it made."""

    page: Any
    requests: list[str] = field(default_factory=list)

    def external_requests(self) -> list[str]:
        return [url for url in self.requests if not is_local(url)]

    def screenshot(self, name: str) -> Path:
        path = artifacts_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextlib.contextmanager
def chromium(viewport: tuple[int, int] = (1280, 900)) -> Iterator[Browser]:
    """A headless Chromium page on a fresh profile; closed, with its processes, on exit."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="toolkit-chromium-"))
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                service_workers="block",
            )
            try:
                browser = Browser(page=context.pages[0] if context.pages else context.new_page())
                context.on("request", lambda request: browser.requests.append(request.url))
                browser.page.set_default_timeout(30_000)
                yield browser
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def lab_command() -> list[str]:
    """The command ``make lab`` runs (``make -n``), so the test serves JupyterLab the same way."""
    import shlex

    make = shutil.which("make")
    if make:
        out = subprocess.run(
            [make, "-n", "-s", "-C", str(REPO), "lab", "LAB_PORT=0"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            if "jupyter lab" in line:
                argv = shlex.split(line)
                argv[0] = str(REPO / argv[0]) if not Path(argv[0]).is_absolute() else argv[0]
                return [a for a in argv if not a.startswith(("--port=", "--ServerApp.root_dir="))]
    pytest.fail("cannot read the `make lab` command from the Makefile (make -n lab)")


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (Linux /proc), to catch leaked kernels."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found
