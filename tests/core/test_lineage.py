"""Lineage facts: git state, environment, scheduler context and data fingerprints."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.core import lineage
from toolkit.core.lineage import datafiles

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Isolate from the machine's git config (signing, hooks, default branch name).
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "spec.yaml").write_text("steps: []\n")
    _git(root, "add", "spec.yaml")
    _git(root, "commit", "-q", "-m", "init")
    return root


@needs_git
def test_git_info_clean_repo(repo: Path) -> None:
    info = lineage.git_info(repo / "spec.yaml")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert info["commit"] == head and len(head) == 40
    assert info["branch"] == "main"
    assert info["dirty"] is False
    assert info["repo_url"] is None
    assert Path(info["root"] or "").resolve() == repo.resolve()


@needs_git
def test_git_info_untracked_files_make_the_tree_dirty_unless_ignored(repo: Path) -> None:
    (repo / ".git" / "info" / "exclude").write_text("runs/\n")
    (repo / "runs").mkdir()
    (repo / "runs" / "out.txt").write_text("an ignored run folder\n")
    assert lineage.git_info(repo)["dirty"] is False
    (repo / "helper.py").write_text("# a module nobody committed\n")
    assert lineage.git_info(repo)["dirty"] is True
    (repo / "helper.py").unlink()
    (repo / "spec.yaml").write_text("steps: [changed]\n")
    assert lineage.git_info(repo)["dirty"] is True


def test_environment_records_the_lock_hash_and_the_kernel_interpreter(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    env = lineage.environment(packages=False, root=tmp_path, kernel="python3")
    assert env["lock"] == {
        "file": "uv.lock",
        "sha256": hashlib.sha256(b"version = 1\n").hexdigest(),
    }
    interp = env["kernel_interpreter"]
    assert interp["kernel"] == "python3" and interp["executable"]
    assert Path(interp["executable"]).exists()
    assert lineage.environment(packages=False, root=tmp_path / "none")["lock"] is None


@needs_git
def test_git_info_detached_head_and_remote_credentials(repo: Path) -> None:
    _git(repo, "remote", "add", "origin", "https://user:ghp_token123@github.com/o/r.git")
    _git(repo, "checkout", "-q", "--detach")
    info = lineage.git_info(repo)
    assert info["branch"] is None
    assert info["repo_url"] == "https://github.com/o/r.git"


@needs_git
def test_git_info_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()
    assert lineage.git_info(folder) == {
        "commit": None,
        "branch": None,
        "dirty": None,
        "repo_url": None,
        "root": None,
    }


def test_git_info_without_a_git_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert lineage.git_info(tmp_path)["commit"] is None


def test_environment_lists_sorted_packages() -> None:
    env = lineage.environment()
    assert env["python"].count(".") == 2
    assert env["host"]
    packages = env["packages"]
    assert list(packages) == sorted(packages)
    assert "pandas" in packages and "pytest" in packages
    assert "packages" not in lineage.environment(packages=False)


def test_scheduler_context_airflow_keeps_only_whitelisted_variables() -> None:
    env = {
        "AIRFLOW_CTX_DAG_ID": "nightly",
        "AIRFLOW_CTX_TASK_ID": "train",
        "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-11-25",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:pw@db/airflow",
        "AWS_SECRET_ACCESS_KEY": "nope",
    }
    ctx = lineage.scheduler_context(env)
    assert ctx == {
        "AIRFLOW_CTX_DAG_ID": "nightly",
        "AIRFLOW_CTX_DAG_RUN_ID": "scheduled__2026-11-25",
        "AIRFLOW_CTX_TASK_ID": "train",
        "scheduler": "airflow",
    }


def test_scheduler_context_github_generic_ci_and_cron_wrappers() -> None:
    gha = lineage.scheduler_context(
        {
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_RUN_ID": "42",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_TOKEN": "ghs_secret",
        }
    )
    assert gha["scheduler"] == "github-actions"
    assert gha["run_url"] == "https://github.com/o/r/actions/runs/42"
    assert "GITHUB_TOKEN" not in gha
    assert lineage.scheduler_context({"CI": "1"})["scheduler"] == "ci"
    cron = lineage.scheduler_context({"TOOLKIT_CTX_SCHEDULER": "cron", "TOOLKIT_CTX_JOB": "daily"})
    assert cron == {
        "TOOLKIT_CTX_JOB": "daily",
        "TOOLKIT_CTX_SCHEDULER": "cron",
        "scheduler": "cron",
    }


def test_spec_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_bytes(b"name: p\n")
    assert lineage.spec_hash(spec) == hashlib.sha256(b"name: p\n").hexdigest()


def test_fingerprint_csv_rows_schema_and_stable_hash(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("id,customer,amount\n1,C001,9.5\n2,C002,3.0\n3,,1.25\n")
    first = lineage.fingerprint(path)
    assert first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first["size"] == path.stat().st_size
    assert first["rows"] == 3
    assert first["format"] == "csv"
    assert first["schema"] == {"id": "int64", "customer": "str", "amount": "float64"}
    assert lineage.fingerprint(path) == first
    path.write_text("id,customer,amount\n1,C001,9.5\n")
    changed = lineage.fingerprint(path)
    assert changed["sha256"] != first["sha256"] and changed["rows"] == 1


def test_fingerprint_csv_promotes_dtypes_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datafiles, "CSV_CHUNK_ROWS", 2)
    path = tmp_path / "late_nan.csv"
    path.write_text("a,b\n1,x\n2,y\n3,z\n,w\n")  # the NaN only shows up in the second chunk
    facts = lineage.fingerprint(path)
    assert facts["rows"] == 4
    assert facts["schema"] == {"a": "float64", "b": "str"}
    assert facts["schema"] == {k: str(v) for k, v in pd.read_csv(path).dtypes.items()}


def test_fingerprint_parquet_reads_footer_metadata(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "name": ["a", "b", "c", "d"]})
    pq.write_table(table, path, row_group_size=2)
    facts = lineage.fingerprint(path)
    assert facts["rows"] == 4
    assert facts["schema"] == {"id": "int64", "name": "string"}
    assert facts["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_fingerprint_other_files_missing_paths_and_unparseable_tables(tmp_path: Path) -> None:
    blob = tmp_path / "model.bin"
    blob.write_bytes(b"\x00\x01")
    assert set(lineage.fingerprint(blob)) == {"path", "kind", "sha256", "size"}
    assert lineage.fingerprint(tmp_path / "nope.csv") == {
        "path": str(tmp_path / "nope.csv"),
        "kind": "missing",
    }
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    facts = lineage.fingerprint(broken)
    assert facts["size"] == 11 and "error" in facts and "rows" not in facts


def test_a_json_object_of_scalars_is_hashed_not_read_as_a_table(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"accuracy": 0.97, "model": "lr", "n": 143, "ok": true, "gap": null}')
    probe = (
        "import sys, json; from pathlib import Path; from toolkit.core import lineage; "
        "facts = lineage.fingerprint(Path(sys.argv[1])); "
        "print(json.dumps(sorted(facts)), 'pandas' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(metrics)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-1] == "False"  # no pandas imported to find out
    assert set(lineage.fingerprint(metrics)) == {"path", "kind", "sha256", "size"}
    records = tmp_path / "records.json"
    records.write_text('[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]')  # a table: read as one
    assert lineage.fingerprint(records)["rows"] == 2


def test_fingerprint_directory_covers_names_and_contents(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"x": [i, i, i]}), folder / f"part-{i}.parquet")
    facts = lineage.fingerprint(folder)
    assert facts["kind"] == "dir" and facts["files"] == 2 and facts["rows"] == 6
    assert facts["schema"] == {"x": "int64"}
    (folder / "part-1.parquet").rename(folder / "part-9.parquet")
    renamed = lineage.fingerprint(folder)
    assert renamed["sha256"] != facts["sha256"] and renamed["size"] == facts["size"]
