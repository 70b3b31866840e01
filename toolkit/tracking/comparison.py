"""What changed between two pipeline runs: the computation behind ``toolkit diff``.

Pure: two :class:`RunSide` records in, a :class:`RunDiff` out (no MLflow, no files). Loading
runs is :mod:`toolkit.tracking.run_facts`' job; text and HTML are :mod:`toolkit.reports.rundiff`'s.
Steps are matched by name, so runs of two different pipelines can be compared too (the diff
says so). Notebook sources are diffed with nbdime: cell sources only by default, outputs with
``outputs=True``; ids, execution counts and metadata never.
"""

from __future__ import annotations

import difflib
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

FINGERPRINT_FIELDS = ("rows", "schema", "sha256")


@dataclass(frozen=True)
class StepSide:
    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    fingerprints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # output.key
    contracts: Mapping[str, bool] = field(default_factory=dict)  # "outputs.key" -> success
    notebook: Mapping[str, Any] | None = None  # the executed notebook (nbformat v4 JSON)


@dataclass(frozen=True)
class RunSide:
    name: str
    pipeline: str | None
    commit: str | None
    dirty: bool
    parameters: Mapping[str, Any]
    steps: Mapping[str, StepSide]
    gates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environment: Mapping[str, Any] | None = None
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class NotebookDiff:
    step: str
    changed: bool
    text: str  # nbdime's pretty diff (plain text)
    unified: str  # difflib unified diff of the cells, for pages
    note: str | None = None


@dataclass(frozen=True)
class RunDiff:
    a: str
    b: str
    pipelines: tuple[str | None, str | None]
    commit: tuple[str | None, str | None]
    parameters: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    contracts: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    environment: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    notebooks: list[NotebookDiff]
    notes: list[str] = field(default_factory=list)
    with_outputs: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.commit[0] != self.commit[1]
            or self.parameters
            or any(m["a"] != m["b"] for m in self.metrics)
            or self.gates
            or self.contracts
            or self.outputs
            or self.environment
            or self.steps
            or any(n.changed for n in self.notebooks)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = self.changed
        return data


def _delta(a: Any, b: Any) -> float | None:
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    if numbers and not (math.isnan(a) or math.isnan(b)):
        return float(b) - float(a)
    return None


def _pairs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _cells_text(nb: Mapping[str, Any] | None, outputs: bool) -> list[str]:
    """A notebook as lines a reviewer reads: one header per cell, then its source."""
    lines: list[str] = []
    for i, cell in enumerate((nb or {}).get("cells", [])):
        tags = (cell.get("metadata") or {}).get("tags") or []
        head = f"# [{i}] {cell.get('cell_type', '?')}" + (f" tags={tags}" if tags else "")
        source = cell.get("source", "")
        lines += [head, *("".join(source) if isinstance(source, list) else source).splitlines()]
        if outputs:
            for out in cell.get("outputs", []) or []:
                text = out.get("text") or (out.get("data") or {}).get("text/plain") or ""
                text = "".join(text) if isinstance(text, list) else str(text)
                lines += [f"#   out: {ln}" for ln in text.splitlines()]
    return lines


def notebook_diff(
    step: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, outputs: bool = False
) -> NotebookDiff:
    """nbdime's diff of two notebooks' sources (and outputs), plus a unified text diff."""
    if a is None or b is None:
        missing = "first" if a is None else "second"
        return NotebookDiff(step, False, "", "", note=f"no executed notebook in the {missing} run")
    # lazy: nbdime and its diff machinery cost ~0.3 s
    from nbdime import diff_notebooks
    from nbdime.diffing.notebooks import reset_notebook_differ, set_notebook_diff_targets
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

    nb_a, nb_b = _node(a), _node(b)
    # The targets are module-global in nbdime: set them for this call, then restore defaults.
    set_notebook_diff_targets(
        sources=True,
        outputs=outputs,
        attachments=False,
        metadata=False,
        identifier=False,
        details=False,
    )
    try:
        diff = diff_notebooks(nb_a, nb_b)
    finally:
        reset_notebook_differ()
    buf = io.StringIO()
    if diff:
        config = PrettyPrintConfig(out=buf, use_color=False, use_git=False, use_diff=False)
        pretty_print_diff(nb_a, diff, "", config)
    unified = "\n".join(
        difflib.unified_diff(
            _cells_text(a, outputs), _cells_text(b, outputs), "a", "b", lineterm="", n=2
        )
    )
    return NotebookDiff(step, bool(diff), buf.getvalue(), unified)


def _node(data: Mapping[str, Any]) -> Any:
    """A NotebookNode with joined multi-line strings, as nbdime expects (``reads`` does that).

    Cell ids go: papermill and jupytext draw new ones per execution, and nbdime would report
    each as a change.
    """
    import json

    import nbformat

    copy = json.loads(json.dumps(data))
    for cell in copy.get("cells", []):
        cell.pop("id", None)
    copy["nbformat_minor"] = min(int(copy.get("nbformat_minor", 4)), 4)
    return nbformat.reads(json.dumps(copy), as_version=4)


def diff_runs(a: RunSide, b: RunSide, *, outputs: bool = False) -> RunDiff:
    """Everything that differs between runs ``a`` and ``b`` (metrics: every shared one)."""
    notes: list[str] = []
    if a.pipeline != b.pipeline:
        notes.append(
            f"runs of different pipelines ({a.pipeline} vs {b.pipeline}): steps are matched by name"
        )
    for side in (a, b):
        if side.dirty:
            notes.append(
                f"run {side.name} ran from a dirty tree: its code is not exactly its commit"
            )
    names = list(a.steps) + [n for n in b.steps if n not in a.steps]
    steps, metrics, contracts, prints, notebooks = [], [], [], [], []
    for name in names:
        sa, sb = a.steps.get(name), b.steps.get(name)
        if sa is None or sb is None or sa.status != sb.status:
            steps.append(
                {"step": name, "a": sa.status if sa else None, "b": sb.status if sb else None}
            )
        if sa is None or sb is None:
            continue
        for key in sorted(set(sa.metrics) | set(sb.metrics)):
            va, vb = sa.metrics.get(key), sb.metrics.get(key)
            metrics.append({"step": name, "key": key, "a": va, "b": vb, "delta": _delta(va, vb)})
        for key, ca, cb in _pairs(sa.contracts, sb.contracts):
            contracts.append({"step": name, "target": key, "a": ca, "b": cb})
        for key in sorted(set(sa.fingerprints) | set(sb.fingerprints)):
            fa, fb = sa.fingerprints.get(key) or {}, sb.fingerprints.get(key) or {}
            for fact in FINGERPRINT_FIELDS:
                if fa.get(fact) != fb.get(fact):
                    fact_a, fact_b = fa.get(fact), fb.get(fact)
                    if fact == "schema":
                        fact_a, fact_b = _schema_change(fact_a or {}, fact_b or {})
                    prints.append(
                        {"step": name, "output": key, "field": fact, "a": fact_a, "b": fact_b}
                    )
        notebooks.append(notebook_diff(name, sa.notebook, sb.notebook, outputs))
    gates = [
        {"gate": g, "a": ga, "b": gb}
        for g, ga, gb in _pairs(
            {k: _gate(v) for k, v in a.gates.items()}, {k: _gate(v) for k, v in b.gates.items()}
        )
    ]
    return RunDiff(
        a=a.name,
        b=b.name,
        pipelines=(a.pipeline, b.pipeline),
        commit=(a.commit, b.commit),
        parameters=[
            {"key": k, "a": va, "b": vb} for k, va, vb in _pairs(a.parameters, b.parameters)
        ],
        metrics=metrics,
        gates=gates,
        contracts=contracts,
        outputs=prints,
        environment=environment_diff(a.environment, b.environment),
        steps=steps,
        notebooks=notebooks,
        notes=notes,
        with_outputs=outputs,
    )


def _gate(value: Any) -> str | None:
    if isinstance(value, str) or value is None:
        return value
    verdict = "passed" if value.get("passed") else "failed"
    shown = value.get("value")
    return f"{verdict} ({shown:.6g})" if isinstance(shown, int | float) else verdict


def _schema_change(a: Mapping[str, str], b: Mapping[str, str]) -> tuple[str, str]:
    """Only the columns that differ, so a wide table's change stays readable."""
    cols = [c for c in sorted(set(a) | set(b)) if a.get(c) != b.get(c)]
    return (
        ", ".join(f"{c}:{a.get(c, '-')}" for c in cols),
        ", ".join(f"{c}:{b.get(c, '-')}" for c in cols),
    )


def environment_diff(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Python, lock hash, kernel interpreter and every package that changed."""
    if not a or not b:
        return []
    out = [
        {"item": key, "a": a.get(key), "b": b.get(key)}
        for key in ("python", "python_implementation")
        if a.get(key) != b.get(key)
    ]
    lock_a, lock_b = (a.get("lock") or {}).get("sha256"), (b.get("lock") or {}).get("sha256")
    if lock_a != lock_b:
        out.append({"item": "lock", "a": lock_a and lock_a[:12], "b": lock_b and lock_b[:12]})
    ka = (a.get("kernel_interpreter") or {}).get("executable")
    kb = (b.get("kernel_interpreter") or {}).get("executable")
    if ka != kb:
        out.append({"item": "kernel interpreter", "a": ka, "b": kb})
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    out += [{"item": f"package {k}", "a": va, "b": vb} for k, va, vb in _pairs(pa, pb)]
    return out
