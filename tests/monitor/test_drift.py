"""Drift statistics, reference profiles and monitor_batch on synthetic data with known answers."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toolkit.core.errors import ContractError, SpecError, UsageError
from toolkit.monitor import (
    MonitorThresholds,
    ReferenceProfile,
    build_profile,
    chi_square,
    ks_from_sketch,
    load_profile,
    monitor_batch,
    psi,
    total_variation,
)
from toolkit.monitor.drift import metric_key
from toolkit.monitor.profile import finite_sorted

CITIES = ["paris", "rome", "oslo"]


def _frame(rng: np.random.Generator, rows: int, *, city_p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    """Four inputs: a positive sensor reading, an integer, a count and a category."""
    return pd.DataFrame(
        {
            "sensor": rng.normal(20.0, 4.0, rows),
            "age": rng.integers(18, 80, rows),
            "kids": rng.integers(0, 4, rows),
            "city": rng.choice(CITIES, rows, p=list(city_p)),
        }
    )


def _outputs(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"prediction": rng.integers(0, 2, rows), "probability": rng.beta(2.0, 5.0, rows)}
    )


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    rng = np.random.default_rng(7)
    return build_profile(_frame(rng, 40_000), _outputs(rng, 40_000), meta={"model": "churn"})


def _monitor(batch: pd.DataFrame, reference: ReferenceProfile, **kwargs: object):
    kwargs = {"model": "churn", "version": "3", "batch_name": "b1", **kwargs}
    return monitor_batch(batch, reference, **kwargs)  # type: ignore[arg-type]


# --- the statistics ---------------------------------------------------------------------------


def test_psi_known_answers() -> None:
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    # (0.7 - 0.5) ln(0.7 / 0.5) + (0.3 - 0.5) ln(0.3 / 0.5)
    assert psi(np.array([5, 5]), np.array([7, 3])) == pytest.approx(0.169459572, abs=1e-9)
    # An empty reference bin is floored at 1e-4: (0.5 - 1e-4) ln(0.5 / 1e-4) + 0.5 ln 2.
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + 0.5 * math.log(2.0)
    assert psi(np.array([100, 0]), np.array([50, 50])) == pytest.approx(expected, rel=1e-12)
    assert psi(np.array([1, 2]), np.array([0, 0])) == 0.0  # nothing to compare


def test_chi_square_and_total_variation_known_answers() -> None:
    # Expected 20 per cell: chi2 = 4 * 100 / 20 = 20 on 2 dof, so p = exp(-20 / 2).
    stat, p = chi_square(np.array([10, 20, 30]), np.array([30, 20, 10]))
    assert stat == pytest.approx(20.0)
    assert p == pytest.approx(math.exp(-10.0), rel=1e-9)
    assert chi_square(np.array([5, 0]), np.array([7, 0])) == (0.0, 1.0)  # one category only
    assert total_variation(np.array([1, 1]), np.array([1, 3])) == pytest.approx(0.25)


def test_ks_sketch_matches_scipy_on_continuous_data() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.1, 1.1, 5_000)
    profile = build_profile(pd.DataFrame({"x": ref})).features["x"]
    d, p = ks_from_sketch(
        np.asarray(profile.grid), np.asarray(profile.grid_counts), profile.count, np.sort(cur)
    )
    exact = stats.ks_2samp(ref, cur)
    # The sketch has 1,001 points: the statistic is short of the exact one by < 1/1000.
    assert exact.statistic - 0.001 <= d <= exact.statistic + 1e-12
    # Same asymptotic p-value as scipy, at a statistic within that bound.
    n_eff = round(20_000 * 5_000 / 25_000)
    assert (
        stats.kstwo.sf(exact.statistic, n_eff)
        <= p
        <= stats.kstwo.sf(exact.statistic - 0.001, n_eff)
    )


def test_ks_sketch_is_exact_on_integer_data() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.integers(0, 10, 30_000), rng.integers(0, 12, 4_000)
    profile = build_profile(pd.DataFrame({"x": ref})).features["x"]
    d, _ = ks_from_sketch(
        np.asarray(profile.grid), np.asarray(profile.grid_counts), profile.count, np.sort(cur)
    )
    assert d == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)


# --- profiles ---------------------------------------------------------------------------------


def test_profile_bins_are_reference_deciles(reference: ReferenceProfile) -> None:
    sensor = reference.features["sensor"]
    assert sensor.kind == "numeric" and len(sensor.edges) == 9
    assert sum(sensor.bin_counts) == 40_000 and max(sensor.bin_counts) - min(sensor.bin_counts) <= 2
    assert reference.features["city"].kind == "categorical"
    assert set(reference.features["city"].categories) == set(CITIES)
    assert reference.predictions["prediction"].kind == "categorical"  # integer class labels
    assert reference.predictions["probability"].kind == "numeric"


def test_profile_round_trips_through_json(reference: ReferenceProfile, tmp_path: Path) -> None:
    path = reference.save(tmp_path / "ref.json")
    assert json.loads(path.read_text())["format"] == "toolkit.monitor.reference-profile"
    assert load_profile(path) == reference


def test_missing_profile_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="reference profile not found") as info:
        load_profile(tmp_path / "nope.json")
    assert "re-run the training pipeline" in str(info.value)
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ContractError, match="not a toolkit reference profile"):
        load_profile(tmp_path / "other.json")


# --- monitor_batch ----------------------------------------------------------------------------


def test_identical_distribution_does_not_drift(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(11)
    batch = pd.concat([_frame(rng, 20_000), _outputs(rng, 20_000)], axis=1)
    result = _monitor(batch, reference)
    assert result.status == "ok" and not result.alert and result.breaches == ()
    assert all(d.psi < 0.01 for d in (*result.features, *result.predictions))
    assert {d.name for d in result.predictions} == {"prediction", "probability"}
    assert result.metrics["drift.psi.sensor"] < 0.01 and result.metrics["monitor.status"] == 0


def test_recalibrated_sensor_alerts(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(12)
    batch = _frame(rng, 5_000)
    batch["sensor"] *= 1.3  # the instrument's calibration changed
    result = _monitor(batch, reference)
    by_name = {d.name: d for d in result.features}
    assert result.alert and by_name["sensor"].status == "alert"
    assert {d.status for n, d in by_name.items() if n != "sensor"} == {"ok"}
    metrics = {b.metric for b in result.breaches if b.level == "alert"}
    assert metrics == {"drift.psi.sensor", "drift.ks.sensor"}
    assert (
        result.metrics["drift.ks.sensor"] > 0.4 and result.metrics["drift.ks_pvalue.sensor"] < 1e-6
    )


def test_categorical_shift_alerts(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(13)
    result = _monitor(_frame(rng, 5_000, city_p=(0.2, 0.3, 0.5)), reference)
    city = next(d for d in result.features if d.name == "city")
    assert city.status == "alert" and city.test == "chi2"
    assert city.effect == pytest.approx(0.3, abs=0.03)  # 30 points moved from paris to oslo
    assert {b.metric for b in city.breaches} == {"drift.psi.city", "drift.tvd.city"}


def test_huge_batch_does_not_alert_on_trivial_shift(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(14)
    batch = _frame(rng, 400_000)
    batch["sensor"] += 0.2  # 0.05 sd: significant with 400k rows, but trivial
    sensor = next(d for d in _monitor(batch, reference).features if d.name == "sensor")
    assert sensor.pvalue is not None and sensor.pvalue < 0.01
    assert sensor.status == "ok"


def test_small_batch_only_warns(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(15)
    batch = _frame(rng, 50)
    batch["sensor"] *= 1.3
    result = _monitor(batch, reference)
    assert result.status == "warn" and not result.alert
    assert any("min_rows" in b.message for b in result.breaches)


def test_missing_values_are_drift(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(16)
    batch = _frame(rng, 5_000)
    batch.loc[batch.index[:1_500], "sensor"] = np.nan
    sensor = next(d for d in _monitor(batch, reference).features if d.name == "sensor")
    assert sensor.missing_rate == pytest.approx(0.3) and sensor.status == "alert"


def test_missing_columns_are_named(reference: ReferenceProfile) -> None:
    batch = _frame(np.random.default_rng(17), 100).drop(columns=["city", "kids"])
    with pytest.raises(ContractError, match="missing 3 column") as info:
        _monitor(batch.rename(columns={"sensor": "Sensor"}), reference)
    message = str(info.value)
    assert "city" in message and "kids" in message and "sensor" in message
    assert "did you mean 'Sensor'" in message


def test_empty_batch_is_an_error(reference: ReferenceProfile) -> None:
    with pytest.raises(ContractError, match="empty"):
        _monitor(_frame(np.random.default_rng(18), 0), reference)


def test_raw_batch_is_scored_and_rates_are_measured(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(19)
    raw = _frame(rng, 2_000)
    paths = np.array(["model"] * 1_500 + ["fallback"] * 400 + ["rejected"] * 100)

    def score(frame: pd.DataFrame) -> pd.DataFrame:
        latency = np.arange(len(frame)) % 100 + 1.0  # per-request latencies: 1 to 100 ms
        out = _outputs(rng, len(frame)).assign(path=paths, latency_ms=latency)
        out.loc[out["path"] == "rejected", ["prediction", "probability"]] = np.nan
        return out

    result = _monitor(raw, reference, score=score)
    assert result.source == "raw batch, scored by the model"
    assert result.rates == {"model": 0.75, "fallback": 0.2, "rejected": 0.05}
    assert result.latency["p50_ms"] == pytest.approx(50.5)
    assert result.latency["p95_ms"] == pytest.approx(95.05)
    assert {b.metric: b.level for b in result.breaches} == {
        "rate.fallback": "alert",
        "rate.rejected": "alert",
    }
    probability = next(d for d in result.predictions if d.name == "probability")
    assert probability.rows == 1_900  # rejected rows are not model outputs
    one_call = _monitor(raw.assign(path="model", latency_ms=2500.0), reference)
    assert one_call.latency == {"call_ms": 2500.0, "per_row_ms": 1.25}
    assert not one_call.breaches  # a batch's duration is not a request's latency
    unscored = _monitor(raw, reference)
    assert unscored.predictions == () and unscored.rates == {}
    assert any("no scoring function" in n for n in unscored.notes)


def test_class_labels_read_back_as_floats_are_the_same_categories(
    reference: ReferenceProfile,
) -> None:
    rng = np.random.default_rng(20)
    batch = pd.concat([_frame(rng, 5_000), _outputs(rng, 5_000)], axis=1)
    batch["prediction"] = batch["prediction"].astype(float)  # what a CSV with a blank cell gives
    prediction = next(d for d in _monitor(batch, reference).predictions if d.name == "prediction")
    assert prediction.status == "ok" and prediction.other_rate == 0.0


def test_thresholds_from_dict() -> None:
    t = MonitorThresholds.from_dict(
        {"psi_alert": 0.5, "latency_p95_ms_alert": None, "min_rows": 10}
    )
    assert (t.psi_alert, t.latency_p95_ms_alert, t.min_rows, t.psi_warn) == (0.5, None, 10, 0.1)
    assert MonitorThresholds.from_dict(t.to_dict()) == t
    with pytest.raises(SpecError, match=r"monitoring\.psi_alrt") as info:
        MonitorThresholds.from_dict({"psi_alrt": 0.3})
    assert "did you mean 'psi_alert'" in str(info.value)
    with pytest.raises(SpecError, match="psi_warn"):
        MonitorThresholds.from_dict({"psi_warn": 0.3, "psi_alert": 0.2})
    with pytest.raises(SpecError, match="number"):
        MonitorThresholds.from_dict({"ks_alert": "high"})


def test_thresholds_change_the_verdict(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(21)
    batch = _frame(rng, 5_000)
    batch["sensor"] *= 1.3
    loose = {"psi_alert": None, "ks_alert": None, "psi_warn": None, "ks_warn": None}
    assert _monitor(batch, reference, thresholds=loose).status == "ok"
    assert _monitor(batch, reference, thresholds={"ignore": ["sensor"]}).status == "ok"


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert metric_key("drift", "psi", "petal length (cm)") == "drift.psi.petal length _cm_"
    assert metric_key("drift", "psi", "a/b") == "drift.psi.a_b"


def test_report_is_self_contained_and_escaped(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(22)
    batch = pd.concat([_frame(rng, 3_000), _outputs(rng, 3_000)], axis=1)
    batch["sensor"] *= 1.3
    page = _monitor(batch, reference, batch_name="<b>x</b>", run_link="javascript:alert(1)").html
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 4
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert 'href="javascript' not in page
    assert page.index(">sensor<") < page.index(">age<")  # most drifted first


def test_result_keeps_the_bins_and_the_page_is_drawn_from_them(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(23)
    batch = pd.concat([_frame(rng, 2_000), _outputs(rng, 2_000)], axis=1)
    result = _monitor(batch, reference, charts=2)
    roles = [h.role for h in result.charts]
    assert roles.count("feature") == 2 and "prediction" in roles
    assert all(abs(sum(h.reference) - 1) < 1e-6 for h in result.charts if h.kind != "continuous")
    assert "charts" not in result.to_dict() and "html" not in result.to_dict()
    assert result.html.count("<figure>") == len(result.charts)
    assert "<figure>" not in replace(result, charts=()).html


def test_finite_sorted_drops_nan_and_inf() -> None:
    values = np.array([3.0, np.nan, 1.0, np.inf, 2.0])
    assert finite_sorted(values).tolist() == [1.0, 2.0, 3.0]


def test_batch_is_not_modified_and_duplicate_columns_are_refused(
    reference: ReferenceProfile,
) -> None:
    batch = _frame(np.random.default_rng(23), 500).assign(**{"7": 1.0})
    batch = batch.rename(columns={"7": 7})  # a non-string column name
    before = batch.copy()
    _monitor(batch, reference)
    pd.testing.assert_frame_equal(batch, before)
    twice = pd.concat([batch, batch[["city"]]], axis=1)
    with pytest.raises(ContractError, match="duplicate column"):
        _monitor(twice, reference)
