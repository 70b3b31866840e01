"""``toolkit export airflow``: the generated DAG file, read with ``ast``.

Executing it in real Airflow is tests/execute/test_airflow.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import MakeProject

from toolkit.cli.main import main

SPEC = """
name: etl
steps:
  - name: extract
    notebook: ../notebooks/ok.ipynb
    outputs: {out: raw.txt}
    retries: 2
    retry_delay: 30
    timeout: 600
  - name: clean
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: extract.out}
    outputs: {out: clean.txt}
  - name: report
    notebook: ../notebooks/ok.ipynb
    inputs: {inp: extract.out}
    outputs: {out: report.txt}
"""


def _export(make_project: MakeProject, tmp_path: Path) -> Path:
    spec = make_project(SPEC)
    out = tmp_path / "dags" / "etl.py"
    assert main(["export", "airflow", str(spec), "-o", str(out), "--schedule", "@daily"]) == 0
    return out


def _operators(tree: ast.Module) -> dict[str, dict[str, ast.expr]]:
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BashOperator":
            kwargs = {k.arg: k.value for k in node.keywords if k.arg}
            found[ast.literal_eval(kwargs["task_id"])] = kwargs
    return found


def _edges(tree: ast.Module) -> set[tuple[str, str]]:
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            right = "finish" if isinstance(node.right, ast.Name) else None
            if isinstance(node.right, ast.Subscript):
                right = ast.literal_eval(node.right.slice)
            if isinstance(node.left, ast.Subscript):
                edges.add((ast.literal_eval(node.left.slice), right))
            elif isinstance(node.left, ast.ListComp):  # [tasks[n] for n in [...]] >> finish
                for leaf in ast.literal_eval(node.left.generators[0].iter):
                    edges.add((leaf, right))
    return edges


def test_generated_dag_has_a_task_per_step_with_edges_retries_and_timeouts(
    make_project: MakeProject, tmp_path: Path
) -> None:
    path = _export(make_project, tmp_path)
    source = path.read_text()
    compile(source, str(path), "exec")
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "toolkit" not in imported  # Airflow parses DAG files often: keep them light

    ops = _operators(tree)
    assert set(ops) == {"extract", "clean", "report", "finish"}
    extract = ops["extract"]
    assert ast.literal_eval(extract["retries"]) == 2
    assert ast.unparse(extract["retry_delay"]) == "timedelta(seconds=30)"
    assert ast.unparse(extract["execution_timeout"]) == "timedelta(seconds=720)"  # + margin
    assert "execution_timeout" not in ops["clean"]
    assert ast.unparse(extract["bash_command"]) == "toolkit('--step', 'extract')"
    assert ast.unparse(ops["finish"]["bash_command"]) == "toolkit('--finish')"
    assert ast.literal_eval(ops["finish"]["trigger_rule"]) == "all_done"
    assert _edges(tree) == {
        ("extract", "clean"),
        ("extract", "report"),
        ("clean", "finish"),
        ("report", "finish"),
    }
    assert 'RUN_ID = "{{ run_id | toolkit_run_id }}"' in source
    assert '"@daily"' in source

    # The run id filter, executed on its own: Airflow's ids become safe folder names.
    namespace: dict[str, object] = {}
    func = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "toolkit_run_id"
    )
    exec("import re\n" + ast.unparse(func), namespace)
    sanitize = namespace["toolkit_run_id"]
    assert (
        sanitize("scheduled__2026-01-01T00:00:00+00:00") == "scheduled__2026-01-01T00-00-00-00-00"
    )  # type: ignore[operator]
