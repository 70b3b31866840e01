"""Where a run came from and what it touched: code version, machine, scheduler and data.

Everything here is best effort on purpose. A pipeline must run outside git, without a ``git``
binary, in a container without a passwd entry: missing facts become ``None``, never errors.
No MLflow here; :mod:`toolkit.tracking` decides how these facts are logged.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import platform
import socket
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any, TypedDict

from toolkit.core.fsutil import sha256_file

_GIT_TIMEOUT_S = 5.0
#: Rows per pandas chunk when reading a CSV for its fingerprint (bounds memory on large files).
CSV_CHUNK_ROWS = 200_000


class GitInfo(TypedDict):
    commit: str | None
    branch: str | None
    dirty: bool | None
    repo_url: str | None
    root: str | None


def _git(args: list[str], cwd: Path) -> str | None:
    """Run one git command; None on any failure (no git, not a repo, timeout, odd ownership)."""
    env = dict(os.environ)
    # `git status` refreshes the index and takes .git/index.lock unless told not to; a run must
    # never fight the user's own git commands for that lock.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _strip_credentials(url: str) -> str:
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
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return empty
    commit = _git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd) or None
    branch = _git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd) or None
    status = _git(["status", "--porcelain", "--untracked-files=normal"], cwd)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    return {
        "commit": commit,
        "branch": branch,
        "dirty": None if status is None else bool(status),
        "repo_url": _strip_credentials(remote) if remote else None,
        "root": root,
    }


def current_user() -> str | None:
    """Login name; containers running as an arbitrary uid have none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return None


def installed_packages() -> dict[str, str]:
    """``{distribution: version}`` of the running interpreter, sorted by normalised name."""
    from importlib import metadata  # lazy: ~15 ms, only needed once per pipeline run

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") if dist.metadata else None
        if name:
            # PEP 503 normalisation so `Foo_Bar` and `foo-bar` are one entry; first one wins,
            # which matches the import system's sys.path order.
            found.setdefault(name.lower().replace("_", "-").replace(".", "-"), dist.version)
    return dict(sorted(found.items()))


#: Lock files, most specific first: the first one found at the project root pins the run.
LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock", "requirements.lock")


def lock_info(root: Path | None) -> dict[str, str] | None:
    """``{"file", "sha256"}`` of the project's dependency lock, or None without one.

    The hash names the exact set of pinned distributions: two runs with the same lock hash were
    meant to run on the same packages, whatever ``packages`` says was really installed.
    """
    if root is None:
        return None
    for name in LOCK_FILES:
        path = Path(root) / name
        if path.is_file():
            try:
                return {"file": name, "sha256": sha256_file(path)}
            except OSError:
                return None
    return None


# Held for the first import of jupyter_client in a process. Its modules import each other, and
# two threads importing it at once (this module's environment thread and a step's thread in
# toolkit.execute.kernel, which takes the same lock) leave one with a half-initialised module:
# "cannot import name 'AsyncKernelManager' from partially initialized module".
JUPYTER_IMPORT_LOCK = threading.Lock()


def kernel_interpreter(kernel: str | None) -> dict[str, str | None] | None:
    """The interpreter a Jupyter kernel runs: ``{"kernel", "argv0", "executable"}``.

    The notebooks run there, not in the orchestrator's interpreter. A kernelspec whose command is
    plain ``python`` is started with the orchestrator's own interpreter (jupyter_client's rule),
    so that is what is recorded for it.
    """
    if not kernel:
        return None
    try:
        with JUPYTER_IMPORT_LOCK:
            from jupyter_client.kernelspec import KernelSpecManager  # lazy: jupyter's import cost

        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except Exception:  # no such kernel, no jupyter_client: the run reports it elsewhere
        return {"kernel": kernel, "argv0": None, "executable": None}
    argv0 = argv[0] if argv else None
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if argv0 in bare:
        executable: str | None = sys.executable
    else:
        import shutil

        executable = shutil.which(argv0) if argv0 else None
    return {"kernel": kernel, "argv0": argv0, "executable": executable}


def environment(
    *, packages: bool = True, root: Path | None = None, kernel: str | None = None
) -> dict[str, Any]:
    """User, host, interpreter and (optionally) installed packages: logged once per run.

    With ``root``, the hash of the project's lock file (``lock``); with ``kernel``, the
    interpreter that kernel runs (``kernel_interpreter``).
    """
    info: dict[str, Any] = {
        "user": current_user(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "pid": os.getpid(),
    }
    if root is not None:
        info["lock"] = lock_info(root)
    if kernel is not None:
        info["kernel_interpreter"] = kernel_interpreter(kernel)
    if packages:
        info["packages"] = installed_packages()
    return info


# Scheduler detection, most specific first. Each entry: (name, marker variable, variables kept).
# Only whitelisted names are read: the environment also holds credentials.
_SCHEDULERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "airflow",
        "AIRFLOW_CTX_DAG_ID",
        (
            "AIRFLOW_CTX_DAG_ID",
            "AIRFLOW_CTX_TASK_ID",
            "AIRFLOW_CTX_DAG_RUN_ID",
            "AIRFLOW_CTX_EXECUTION_DATE",
            "AIRFLOW_CTX_LOGICAL_DATE",
            "AIRFLOW_CTX_TRY_NUMBER",
            "AIRFLOW_CTX_DAG_OWNER",
        ),
    ),
    (
        "github-actions",
        "GITHUB_ACTIONS",
        (
            "GITHUB_RUN_ID",
            "GITHUB_RUN_ATTEMPT",
            "GITHUB_WORKFLOW",
            "GITHUB_JOB",
            "GITHUB_REPOSITORY",
            "GITHUB_SHA",
            "GITHUB_REF",
            "GITHUB_EVENT_NAME",
            "GITHUB_SERVER_URL",
        ),
    ),
    (
        "gitlab-ci",
        "GITLAB_CI",
        ("CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_URL", "CI_PROJECT_PATH", "CI_COMMIT_SHA"),
    ),
    ("jenkins", "JENKINS_URL", ("BUILD_ID", "BUILD_URL", "JOB_NAME", "BUILD_NUMBER")),
    ("kubernetes", "KUBERNETES_SERVICE_HOST", ("HOSTNAME",)),
)

#: Cron has no environment of its own; wrappers (cron lines, systemd timers, in-house schedulers)
#: describe themselves with ``TOOLKIT_CTX_*`` variables, e.g. ``TOOLKIT_CTX_SCHEDULER=cron``.
CONTEXT_PREFIX = "TOOLKIT_CTX_"


def scheduler_context(env: dict[str, str] | None = None) -> dict[str, str]:
    """Who triggered this run: ``{"scheduler": name, <whitelisted variables>...}``.

    ``scheduler`` is one of airflow, github-actions, gitlab-ci, jenkins, kubernetes, ci (any
    other system setting ``CI``), the value of ``TOOLKIT_CTX_SCHEDULER``, ``interactive``
    (a terminal) or ``unknown`` (no terminal and no marker: typically plain cron).
    """
    env = dict(os.environ if env is None else env)
    context: dict[str, str] = {}
    scheduler: str | None = None
    for name, marker, keep in _SCHEDULERS:
        if env.get(marker):
            scheduler = scheduler or name
            context.update({k: env[k] for k in keep if env.get(k)})
    for key, value in env.items():
        if key.startswith(CONTEXT_PREFIX) and value:
            context[key] = value
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        context["run_url"] = (
            f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/"
            f"{env['GITHUB_RUN_ID']}"
        )
    explicit = env.get(CONTEXT_PREFIX + "SCHEDULER")
    if explicit:
        scheduler = explicit
    elif scheduler is None and env.get("CI", "").lower() in ("1", "true", "yes"):
        scheduler = "ci"
    elif scheduler is None:
        try:
            scheduler = "interactive" if sys.stdin is not None and sys.stdin.isatty() else None
        except (ValueError, OSError):  # a closed stdin
            scheduler = None
    context["scheduler"] = scheduler or "unknown"
    return dict(sorted(context.items()))


def spec_hash(path: Path) -> str:
    """SHA-256 of a spec file's bytes: a changed spec is a different pipeline version."""
    return sha256_file(Path(path))


# Hashing a large input costs seconds and the same file is often an output of one step and the
# input of the next, so fingerprints are cached per process by (path, size, mtime, inode).
_cache: dict[tuple[str, int, int, int], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def _csv_facts(path: Path) -> dict[str, Any]:
    import pandas as pd  # lazy: pandas costs ~0.3 s to import

    # Chunked so a large CSV never sits in memory whole. The zero-row slices keep each chunk's
    # dtypes; concatenating them applies pandas' own promotion rules (int + NaN -> float), which
    # gives the dtypes a whole-file read would infer.
    rows = 0
    heads = []
    with pd.read_csv(path, chunksize=CSV_CHUNK_ROWS) as reader:
        for chunk in reader:
            rows += len(chunk)
            heads.append(chunk.iloc[:0])
    if not heads:
        return {"format": "csv", "rows": 0, "schema": {}}
    schema = pd.concat(heads).dtypes if len(heads) > 1 else heads[0].dtypes
    return {"format": "csv", "rows": rows, "schema": {str(k): str(v) for k, v in schema.items()}}


def _parquet_facts(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq  # lazy

    # Footer metadata only: row count and schema without reading a single data page.
    pf = pq.ParquetFile(path)
    try:
        schema = {field.name: str(field.type) for field in pf.schema_arrow}
        return {"format": "parquet", "rows": pf.metadata.num_rows, "schema": schema}
    finally:
        pf.close()


_OTHER_TABLES = {
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".feather": "feather",
}


def _table_facts(path: Path, kind: str) -> dict[str, Any]:
    """Rows and pandas dtypes of the other table formats contracts accept (read whole)."""
    import pandas as pd  # lazy

    if kind == "feather":
        frame = pd.read_feather(path)
    elif kind == "tsv":
        frame = pd.read_csv(path, sep="\t")
    else:
        frame = pd.read_json(path, lines=kind == "jsonl")
    schema = {str(k): str(v) for k, v in frame.dtypes.items()}
    return {"format": kind, "rows": len(frame), "schema": schema}


def _is_csv(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return bool(suffixes) and (
        suffixes[-1] == ".csv" or (len(suffixes) > 1 and suffixes[-2] == ".csv")  # .csv.gz etc.
    )


def _file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return dict(cached)
    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "file",
        "sha256": sha256_file(path),
        "size": stat.st_size,
    }
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            facts.update(_parquet_facts(path))
        elif _is_csv(path):
            facts.update(_csv_facts(path))
        elif path.suffix.lower() in _OTHER_TABLES:
            facts.update(_table_facts(path, _OTHER_TABLES[path.suffix.lower()]))
    except Exception as exc:  # an unreadable table is still hashed; say why it was not parsed
        facts["error"] = f"{type(exc).__name__}: {exc}"
    with _cache_lock:
        _cache[key] = facts
    return dict(facts)


def fingerprint(path: Path) -> dict[str, Any]:
    """Identity of a data file or folder: content hash, size, and rows/schema for tables.

    * file: ``{"path", "kind": "file", "sha256", "size"}`` plus, for CSV (pandas dtypes) and
      Parquet (Arrow types, from the footer), ``{"format", "rows", "schema": {column: type}}``.
    * directory: ``{"path", "kind": "dir", "sha256", "size", "files"}`` where the hash covers
      every file's relative path and content hash, so renames count as changes. A folder of
      Parquet files (a partitioned dataset) also gets the summed ``rows`` and the first schema.
    * missing: ``{"path", "kind": "missing"}``.
    """
    path = Path(path)
    if path.is_file():
        return _file_fingerprint(path)
    if not path.is_dir():
        return {"path": str(path), "kind": "missing"}
    digest = hashlib.sha256()
    size = 0
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    parts = [_file_fingerprint(p) for p in files]
    for file, part in zip(files, parts, strict=True):
        digest.update(f"{file.relative_to(path).as_posix()}\0{part['sha256']}\n".encode())
        size += part["size"]
    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "dir",
        "sha256": digest.hexdigest(),
        "size": size,
        "files": len(files),
    }
    if parts and all(p.get("format") == "parquet" for p in parts):
        facts.update(
            format="parquet", rows=sum(p["rows"] for p in parts), schema=parts[0]["schema"]
        )
    return facts
