"""A past commit, checked out beside the user's work: a temporary, detached git worktree.

``git worktree add --detach`` shares the object store, so a checkout costs the files it writes,
and the user's working tree, index and branch are never touched: their uncommitted edits stay
where they are. The worktree is removed (and pruned from ``.git/worktrees``) on exit, whatever
happened inside.

Files a run read that git does not have at that commit (ignored data folders, files outside the
repository) cannot come from the checkout. They are checked against the fingerprints the original
run recorded and, when inside the repository, linked into the worktree at the same place.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.errors import UsageError
from toolkit.core.git import run_git
from toolkit.core.lineage.datafiles import fingerprint

# Adding a worktree writes every file of the commit: far longer than a look-up may take.
_GIT_TIMEOUT_S = 120.0


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = run_git(list(args), repo, timeout=_GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot run git in {repo}: {exc}") from exc
    if check and done.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done


def require_commit(repo: Path, commit: str, run: str) -> None:
    """Fail with how to fetch it when ``commit`` is not in the repository (e.g. a shallow clone)."""
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0:
        return
    shallow = _git(repo, "rev-parse", "--is-shallow-repository", check=False).stdout.strip()
    how = f"git fetch origin {commit}"
    if shallow == "true":
        how = f"git fetch --unshallow (this clone is shallow), or {how}"
    raise UsageError(
        f"commit {commit} recorded by run {run} is not in the repository at {repo}",
        hint=f"fetch it first: {how}; then run reproduce again",
    )


def tracked_at(repo: Path, commit: str, rel: Path) -> bool:
    """Whether ``rel`` (a file or folder) is part of ``commit``'s tree."""
    spec = f"{commit}:{rel.as_posix()}"
    return _git(repo, "cat-file", "-e", spec, check=False).returncode == 0


@contextmanager
def checkout(repo: Path, commit: str) -> Iterator[Path]:
    """Yield a fresh detached worktree of ``commit``; removed afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="toolkit-reproduce-"))
    tree = holder / "tree"
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        if tree.exists():
            _git(repo, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(holder, ignore_errors=True)
        _git(repo, "worktree", "prune", check=False)


@dataclass(frozen=True)
class ExternalInput:
    """An input the original run read that the checkout does not provide."""

    name: str  # step.input.key
    path: Path
    recorded: str
    current: str | None  # None: the file is gone

    @property
    def changed(self) -> bool:
        return self.current != self.recorded


def external_inputs(
    repo: Path, commit: str, recorded: Mapping[str, Mapping[str, Any]], produced: set[Path]
) -> list[ExternalInput]:
    """The recorded inputs (``{"step.input.key": fingerprint}``) git does not have at ``commit``,
    with their current content hash. Files a step of the run produced are not inputs here."""
    found = []
    for name, facts in sorted(recorded.items()):
        raw, digest = facts.get("path"), facts.get("sha256")
        if not raw or not digest:
            continue
        path = Path(str(raw)).resolve()
        if path in produced:
            continue
        try:
            rel = path.relative_to(repo)
        except ValueError:
            rel = None
        if rel is not None and tracked_at(repo, commit, rel):
            continue  # versioned with the code: the checkout has the recorded bytes
        now = fingerprint(path).get("sha256") if path.exists() else None
        found.append(ExternalInput(name, path, str(digest), now))
    return found


def provide(inputs: list[ExternalInput], repo: Path, tree: Path) -> None:
    """Link inputs that live inside the repository (but not in git) into the worktree."""
    for item in inputs:
        try:
            rel = item.path.relative_to(repo)
        except ValueError:
            continue  # outside the repository: the spec names the same absolute path
        target = tree / rel
        if item.current is None or target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(item.path, target_is_directory=item.path.is_dir())
