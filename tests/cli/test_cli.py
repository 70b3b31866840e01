"""The command line: exit codes, JSON output and one-paragraph errors, in-process where possible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit.cli.main import main

SIMPLE = """
name: simple
steps:
  - name: a
    notebook: ../notebooks/ok.ipynb
    outputs: {out: a.txt}
  - name: b
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: a.out}
    outputs: {out: b.txt}
"""


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_json_summary(make_project: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_project(SIMPLE, store=True)
    assert run_cli("run", str(path), "--json", "-p", "x=5", "--workers", "1") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert [s["name"] for s in summary["steps"]] == ["a", "b"]
    for step in summary["steps"]:
        assert step["status"] == "succeeded"
        assert step["metrics"] == {"x": 5.0}
        assert Path(step["notebook"]).exists()
        assert step["duration"] > 0 and step["error"] is None
    assert summary["run_id"] == Path(summary["run_dir"]).name


def test_failed_step_exit_code_and_message(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "name: f\nsteps:\n  - {name: boom, notebook: ../notebooks/raises.ipynb}\n"
    assert (
        run_cli("run", str(make_project(spec, notebooks=("raises",), store=True)), "--quiet") == 1
    )
    out = capsys.readouterr().out
    assert "step 'boom' failed" in out and "ValueError" in out and "boom with x=1" in out
    assert "executed notebook kept at" in out


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.with_name("nope.yaml"), "spec file not found"),
        (lambda p: (p.write_text("name: [x\n"), p)[1], "invalid YAML"),
        (
            lambda p: (
                p.write_text(SIMPLE.replace("outputs: {out: a.txt}", "outputz: {out: a.txt}")),
                p,
            )[1],
            "unknown key 'outputz'",
        ),
        (
            lambda p: (p.write_text(SIMPLE.replace("inp: a.out", "inp: c.out")), p)[1],
            "not produced by any step",
        ),
        (
            lambda p: (p.write_text(SIMPLE.replace("b.txt", "a.txt")), p)[1],
            "two steps write the same output",
        ),
        (
            lambda p: (
                p.write_text(
                    SIMPLE.replace(
                        "ok.ipynb\n    outputs: {out: a", "gone.ipynb\n    outputs: {out: a"
                    )
                ),
                p,
            )[1],
            "notebook not found",
        ),
    ],
    ids=[
        "missing-spec",
        "invalid-yaml",
        "unknown-key",
        "unproduced-input",
        "two-writers",
        "missing-notebook",
    ],
)
def test_bad_input_exits_2_with_one_paragraph(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], mutate, expected: str
) -> None:
    path = mutate(make_project(SIMPLE))
    assert run_cli("run", str(path)) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_unknown_parameter_and_cycle(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(SIMPLE)
    assert run_cli("run", str(path), "-p", "lable=1") == 2
    assert "did you mean 'label'" in capsys.readouterr().err
    path.write_text(
        SIMPLE.replace("outputs: {out: a.txt}", "inputs: {inp: b.out}\n    outputs: {out: a.txt}")
    )
    assert run_cli("plan", str(path)) == 2
    assert "cycle" in capsys.readouterr().err


def test_notebook_without_parameters_cell_runs(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "name: n\nsteps:\n  - {name: a, notebook: ../notebooks/no_parameters_cell.ipynb}\n"
    assert (
        run_cli("run", str(make_project(spec, notebooks=("no_parameters_cell",), store=True))) == 0
    )


def test_plan_is_a_dry_run(make_project: MakeProject, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_project(SIMPLE)
    assert run_cli("plan", str(path), "--json", "-p", "b.x=3") == 0
    plan = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in plan["steps"]] == ["a", "b"]
    assert plan["steps"][1]["parameters"]["x"] == 3
    assert not (path.parents[1] / "runs").exists()


def test_check_passes_and_fails(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(SIMPLE)
    assert run_cli("check", str(path)) == 0
    path.write_text(
        SIMPLE.replace("outputs: {out: b.txt}", "parameters: {lable: 1}\n    outputs: {out: b.txt}")
    )
    assert run_cli("check", str(path)) == 2
    assert "did you mean 'label'" in capsys.readouterr().err


def test_debug_shows_traceback_for_toolkit_errors(make_project: MakeProject) -> None:
    from toolkit.core.errors import SpecError

    with pytest.raises(SpecError):
        run_cli("--debug", "run", str(make_project(SIMPLE).with_name("missing.yaml")))


def test_help_does_not_import_engines() -> None:
    code = (
        "import sys\nfrom toolkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('mlflow', 'great_expectations', 'papermill', 'pandas', 'pydantic') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_log_output_streams_cell_output_and_redacts_secrets(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "name: chatty\nsteps:\n  - {name: talk, notebook: ../notebooks/leaks_secret.ipynb, parameters: {db_password: pw-0123456789}, outputs: {out: o.txt}}\n"
    path = make_project(spec, notebooks=("leaks_secret",))
    assert run_cli("run", str(path), "--log-output", "--no-tracking") == 0
    err = capsys.readouterr().err
    assert "[talk] connecting with ***" in err
    assert "pw-0123456789" not in err
    log = next((path.parents[1] / "runs" / "chatty").glob("*/logs/talk.log"))
    assert log.read_text().strip() == "connecting with ***"


def test_output_below_jupyter_stays_off_stdout_and_out_of_files_unscrubbed(
    make_project: MakeProject,
) -> None:
    """What a cell writes to file descriptor 1 itself (a subprocess, a C library, os.write)
    skips the notebook's outputs. It once went to the toolkit's stdout, before the `--json`
    summary a scheduler parses, with secrets unscrubbed. A real process: the kernel inherits
    the file descriptors of the toolkit's process, not pytest's capture of ``sys.stdout``."""
    spec = (
        "name: fds\nsteps:\n  - {name: w, notebook: ../notebooks/writes_to_fds.ipynb, "
        "parameters: {db_password: pw-0123456789}}\n"
    )
    path = make_project(spec, notebooks=("writes_to_fds",))
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit", "run", str(path), "--json", "--no-tracking"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["status"] == "succeeded", proc.stdout[:500]
    assert "pw-0123456789" not in proc.stdout + proc.stderr
    run_dir = next((path.parents[1] / "runs" / "fds").iterdir())
    log = (run_dir / "logs" / "w.kernel.log").read_text()
    assert "fd1 ***" in log and "child ***" in log and "fd2 ***" in log, log
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and b"pw-0123456789" in p.read_bytes()]
    assert leaked == []


def test_failure_summary_says_how_to_resume(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "name: r\nsteps:\n  - {name: boom, notebook: ../notebooks/raises.ipynb}\n"
    path = make_project(spec, notebooks=("raises",))
    assert run_cli("run", str(path), "--quiet", "--no-tracking", "--run-id", "r-1") == 1
    assert f"toolkit run {path} --resume r-1" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--run-id", "--resume"])
def test_a_run_id_cannot_leave_the_runs_folder(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    path = make_project("name: p\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb}\n")
    assert main(["run", str(path), flag, "../../escape"]) == 2
    assert "invalid run id '../../escape'" in capsys.readouterr().err
    assert not (path.parents[2] / "escape").exists()


def test_plan_into_a_closed_pipe_exits_quietly(make_project: MakeProject) -> None:
    """`toolkit plan X | head -c 1`: the reader goes away; no traceback, no "internal error"."""
    path = make_project(SIMPLE)
    toolkit = Path(sys.executable).with_name("toolkit")
    proc = subprocess.Popen(
        [str(toolkit), "plan", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the plan is printed: its write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait() == 141, err
    assert err == ""
