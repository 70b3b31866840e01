"""Running ``git``, and what it says about the repository holding a folder.

One way to call git for the whole toolkit: ``GIT_OPTIONAL_LOCKS=0``, because ``git status``
refreshes the index and takes ``.git/index.lock`` unless told not to, and a run must never fight
the user's own git commands for that lock; ``LC_ALL=C`` so messages parse the same everywhere.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import TypedDict

#: Seconds a look-up may take (``git_info``): lineage is best effort and must not hold a run up.
LOOKUP_TIMEOUT_S = 5.0


class GitInfo(TypedDict):
    commit: str | None
    branch: str | None
    dirty: bool | None
    repo_url: str | None
    root: str | None


def run_git(args: list[str], cwd: Path, *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd`` and capture its text output; the exit code is not checked.

    Raises:
        OSError, subprocess.SubprocessError: no git binary, a missing folder, a timeout.
    """
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def git_output(args: list[str], cwd: Path) -> str | None:
    """Run one git command; None on any failure (no git, not a repo, timeout, odd ownership)."""
    try:
        done = run_git(args, cwd, timeout=LOOKUP_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def strip_credentials(url: str) -> str:
    """Drop ``user:token@`` from a remote URL: CI clones often embed a token there."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url


def git_info(path: Path | None = None) -> GitInfo:
    """Commit, branch, dirty flag and remote of the repository containing ``path``.

    ``dirty`` counts changes to tracked files and untracked files that are not ignored: a new
    helper module or notebook nobody committed changes what a run does just as much as an edit,
    and a checkout of the commit would not have it. Run folders and tracking stores belong in
    ``.gitignore``, so they do not count.
    ``branch`` is None on a detached HEAD (typical in CI).
    """
    cwd = Path(path or Path.cwd())
    if cwd.is_file():
        cwd = cwd.parent
    empty: GitInfo = {"commit": None, "branch": None, "dirty": None, "repo_url": None, "root": None}
    if not cwd.is_dir():
        return empty
    root = git_output(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return empty
    commit = git_output(["rev-parse", "--verify", "--quiet", "HEAD"], cwd) or None
    branch = git_output(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd) or None
    status = git_output(["status", "--porcelain", "--untracked-files=normal"], cwd)
    remote = git_output(["config", "--get", "remote.origin.url"], cwd)
    return {
        "commit": commit,
        "branch": branch,
        "dirty": None if status is None else bool(status),
        "repo_url": strip_credentials(remote) if remote else None,
        "root": root,
    }
