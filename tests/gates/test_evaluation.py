"""Release gates: parsing, kinds, evaluation, reports. Pure: no MLflow."""

from __future__ import annotations

import json
import math

import pytest

from toolkit.core.errors import ExitCode, GateFailed, RegistryError, SpecError
from toolkit.gates.evaluation import GateReport, evaluate_gates, parse_check, parse_checks

METRICS = {"roc_auc": 0.96, "accuracy": 0.91, "predict_p95_ms": 12.0, "val/auc": 0.9}


def one(check: str, metrics=METRICS, champion=None, contracts_ok=None, **kw):
    report = evaluate_gates([check], metrics, champion, contracts_ok, **kw)
    assert len(report.results) == 1
    return report.results[0]


@pytest.mark.parametrize(
    ("check", "kind"),
    [
        ("roc_auc >= 0.95", "threshold"),
        ("roc_auc >= champion.roc_auc - 0.01", "champion"),
        ("predict_p95_ms <= 20", "latency"),
        ("serving_latency_p99 < 0.2", "latency"),
        ("contracts", "contracts"),
        ("  contracts  ", "contracts"),
    ],
)
def test_kinds(check: str, kind: str) -> None:
    assert parse_check(check).kind == kind


@pytest.mark.parametrize(
    ("check", "passed"),
    [
        ("roc_auc >= 0.95", True),
        ("roc_auc >= 0.97", False),
        ("roc_auc > 0.96", False),
        ("roc_auc >= 0.96", True),
        ("roc_auc <= 0.96", True),
        ("roc_auc < 0.96", False),
        ("roc_auc == 0.96", True),
        ("roc_auc == 0.95", False),
        ("accuracy > 0.9", True),
        ("predict_p95_ms <= 20", True),
        ("predict_p95_ms <= 10", False),
        ("roc_auc >= accuracy + 0.05", True),  # other metrics of the run on the right
        ("roc_auc >= 2 * (accuracy - 0.5) + 0.2", False),  # 1.02: precedence and parentheses
        ("roc_auc >= -1e-3", True),
        ("`val/auc` >= .85", True),
    ],
)
def test_thresholds_and_operators(check: str, passed: bool) -> None:
    result = one(check)
    assert result.passed is passed, result
    assert result.error is False


def test_values_and_thresholds_are_reported() -> None:
    result = one("roc_auc >= 2 * (accuracy - 0.5) + 0.2")
    assert result.value == 0.96
    assert result.threshold == pytest.approx(1.02)
    assert result.op == ">="
    assert result.name == "roc_auc"


def test_floating_point_noise_does_not_fail_an_equal_value() -> None:
    # 0.97 - 0.01 is 0.9599999999999999 in binary floating point.
    assert one("roc_auc >= champion.roc_auc - 0.01", champion={"roc_auc": 0.97}).passed
    assert not one("roc_auc > champion.roc_auc - 0.01", champion={"roc_auc": 0.97}).passed


def test_champion_comparison() -> None:
    better = one("roc_auc >= champion.roc_auc - 0.01", champion={"roc_auc": 0.965})
    worse = one(
        "roc_auc >= champion.roc_auc - 0.01", champion={"roc_auc": 0.99}, champion_version="3"
    )
    assert better.passed and better.threshold == pytest.approx(0.955)
    assert not worse.passed
    assert worse.note == "vs champion v3"


def test_first_release_has_no_champion_and_passes_with_a_note() -> None:
    result = one("roc_auc >= champion.roc_auc - 0.01", champion=None)
    assert result.passed
    assert result.note == "no champion yet"
    assert result.value == 0.96 and result.threshold is None


def test_champion_without_the_metric_passes_with_a_note() -> None:
    result = one("roc_auc >= champion.roc_auc", champion={"f1": 0.5}, champion_version="2")
    assert result.passed
    assert "champion v2 has no metric 'roc_auc'" in result.note


@pytest.mark.parametrize(("ok", "passed"), [(True, True), (False, False), (None, False)])
def test_contracts_gate(ok: bool | None, passed: bool) -> None:
    result = one("contracts", contracts_ok=ok)
    assert result.passed is passed
    assert result.kind == "contracts" and result.name == "contracts"
    if ok is None:
        assert "no contracts" in result.note


def test_a_metric_never_logged_is_an_error_naming_the_logged_ones() -> None:
    report = evaluate_gates(["f1 >= 0.8", "roc_auc > 0.5"], METRICS, None, None, step="evaluate")
    missing = report.results[0]
    assert not missing.passed and missing.error
    assert "'f1' was never logged" in missing.note
    assert "step 'evaluate' logged: accuracy, predict_p95_ms, roc_auc, val/auc" in missing.note
    assert report.results[1].passed  # the other gates are still evaluated
    with pytest.raises(RegistryError, match="f1") as caught:
        report.raise_for_failure()
    assert caught.value.exit_code == ExitCode.USAGE


def test_a_metric_never_logged_on_the_right_side_is_an_error_too() -> None:
    result = one("roc_auc >= baseline_auc")
    assert result.error and not result.passed
    assert "'baseline_auc' was never logged" in result.note


def test_nan_fails() -> None:
    result = one("roc_auc >= 0.5", metrics={"roc_auc": math.nan})
    assert not result.passed and result.note == "value is NaN"


def test_division_by_zero_is_an_error() -> None:
    result = one("roc_auc >= 1 / (accuracy - accuracy)")
    assert result.error and "division by zero" in result.note


@pytest.mark.parametrize(
    ("check", "why"),
    [
        ("roc_auc >", "ends too early"),
        ("roc_auc = 0.9", "expected one of >= > <= < =="),
        ("roc_auc != 0.9", "expected one of"),
        ("0.9 <= roc_auc", "left side must be a metric"),
        ("champion.roc_auc <= 1", "left side must be a metric"),
        ("roc_auc >= 0.9 0.1", "unexpected '0.1'"),
        ("roc_auc >= (0.9", "ends too early"),
        ("roc_auc >= 0.9)", "unexpected ')'"),
        ("roc_auc >= $x", "unexpected '$x'"),
        ("roc_auc >= * 2", "expected a number or a metric"),
        ("", "the check is empty"),
    ],
)
def test_bad_expressions_name_the_check(check: str, why: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_checks(["roc_auc > 0.5", check])
    message = str(caught.value)
    assert "gates.checks[1]" in message
    assert repr(check) in message
    assert why in message


def test_evaluate_gates_rejects_bad_expressions_too() -> None:
    with pytest.raises(SpecError, match="oops"):
        evaluate_gates(["oops >="], METRICS, None, True)


def test_report_passes_only_when_every_gate_passes() -> None:
    checks = ["roc_auc >= 0.95", "predict_p95_ms <= 10", "contracts"]
    report = evaluate_gates(checks, METRICS, None, True)
    assert not report.passed
    assert [r.expression for r in report.failed] == ["predict_p95_ms <= 10"]
    with pytest.raises(GateFailed) as caught:
        report.raise_for_failure()
    assert caught.value.exit_code == ExitCode.GATE
    assert "predict_p95_ms <= 10" in str(caught.value)
    good = evaluate_gates(checks[:1] + checks[2:], METRICS, None, True)
    assert good.passed
    good.raise_for_failure()  # no exception


def test_dict_round_trip_and_json() -> None:
    report = evaluate_gates(
        ["roc_auc >= champion.roc_auc", "contracts", "f1 > 0"],
        METRICS,
        {"roc_auc": 0.9},
        False,
        champion_version="4",
    )
    data = json.loads(report.to_json())
    assert data["passed"] is False
    assert data["champion_version"] == "4"
    assert [g["kind"] for g in data["gates"]] == ["champion", "contracts", "threshold"]
    assert GateReport.from_dict(data) == report


def test_summary_lines() -> None:
    report = evaluate_gates(["roc_auc >= 0.95", "f1 > 0", "contracts"], METRICS, None, False)
    lines = report.summary_lines()
    assert lines[0].startswith("PASS  roc_auc >= 0.95  (0.96 >= 0.95)")
    assert lines[1].startswith("ERROR f1 > 0")
    assert lines[2].startswith("FAIL  contracts")
    assert lines[-1] == "gates: 2 of 3 failed"
    first = evaluate_gates(["roc_auc >= champion.roc_auc"], METRICS, None, None)
    assert (
        first.summary_lines()[0] == "PASS  roc_auc >= champion.roc_auc  (0.96)  [no champion yet]"
    )


def test_html_preview_marks_pass_and_fail_and_escapes() -> None:
    report = evaluate_gates(["roc_auc >= 0.95", "predict_p95_ms < 10"], METRICS, None, None)
    page = report._repr_html_()
    assert page.count("<tr>") == 3  # header and two gates
    assert "pass" in page and "fail" in page
    assert "predict_p95_ms &lt; 10" in page
    assert "1 gate(s) failed" in page
