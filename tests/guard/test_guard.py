"""toolkit.guard without MLflow or Great Expectations: contracts, paths, reasons, records.

The model is the example's: StandardScaler + LogisticRegression on the breast-cancer
measurements plus two derived features, trained here on scikit-learn's copy of the data. The
contract is a suite like the example's raw-data contract, compiled from its JSON form.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.data import add_example_features, breast_cancer_raw

from toolkit.core.errors import ContractError, SpecError
from toolkit.guard.build import build_guarded_model, compile_expectations, load_guard_config
from toolkit.guard.decisions import OUTPUT_COLUMNS
from toolkit.guard.input_contract import InputContract
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import load_rules

# sklearn warns when a model fitted on named columns gets numpy: that would mean the guard fed
# the wrong object to the wrong estimator, so such warnings fail the tests here.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

LABELS = {0: "benign", 1: "malignant"}
RULES = """\
# Illustrative only, not medical advice.
name: concave_points
rules:
  - name: many_concave_points
    when: worst_concave_points > 0.142
    label: malignant
  - name: large_and_irregular
    when: [worst_area > 880, worst_concavity >= 0.3]
    label: malignant
    reason: large, irregular nuclei
default: {label: benign, reason: no suspicious measurement}
"""


add_features = add_example_features


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """Raw records as the example's ingest notebook writes them (snake_case, patient_id)."""
    return breast_cancer_raw()


@pytest.fixture(scope="module")
def measures(raw: pd.DataFrame) -> list[str]:
    return [c for c in raw.columns if c not in ("patient_id", "diagnosis")]


@pytest.fixture(scope="module")
def estimator(raw: pd.DataFrame, measures: list[str]) -> Any:
    features = add_features(raw[measures].copy())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(features, (raw["diagnosis"] == "malignant").astype(int))


@pytest.fixture(scope="module")
def suite(raw: pd.DataFrame, measures: list[str]) -> list[dict[str, Any]]:
    expectations: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": list(raw.columns)}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "patient_id", "regex": "^P[0-9]{4}$"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "diagnosis", "value_set": ["benign", "malignant"]}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "mean_radius", "min_value": 10, "max_value": 20}},
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "mean_radius", "type_": "float64"}},
    ]  # fmt: skip
    for column in measures:
        top = float(raw[column].max()) * 1.5
        expectations.append(
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}}
        )
        expectations.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": column, "min_value": 0, "max_value": top},
            }
        )
    return expectations


@pytest.fixture(scope="module")
def contract(suite: list[dict[str, Any]]) -> InputContract:
    return compile_expectations(suite, name="raw_measurements", exclude_columns=["diagnosis"])


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("guard") / "fallback_rules.yaml"
    path.write_text(RULES)
    return path


def config(contract: InputContract, rules: Path, **overrides: Any) -> dict[str, Any]:
    base = {
        "model_name": "breast_cancer",
        "input_contract": contract,
        "output_contract": {"labels": LABELS},
        "confidence": {"min_confidence": 0.9},
        "fallback": {"rules": str(rules)},
        "explain": {"top_k": 3},
    }
    return {**base, **overrides}


@pytest.fixture(scope="module")
def guard(
    estimator: Any, contract: InputContract, rules_file: Path, raw: pd.DataFrame
) -> GuardedModel:
    return build_guarded_model(
        estimator, config(contract, rules_file), preprocess=add_features, input_example=raw.head(3)
    )


def bare_proba(estimator: Any, rows: pd.DataFrame, measures: list[str]) -> np.ndarray:
    return estimator.predict_proba(add_features(rows[measures].copy()))[:, 1]


def confident(estimator: Any, raw: pd.DataFrame, measures: list[str], sure: bool) -> pd.DataFrame:
    proba = bare_proba(estimator, raw, measures)
    keep = np.maximum(proba, 1 - proba) >= 0.9
    return raw[keep if sure else ~keep]


# ----------------------------------------------------------------------------- paths


def test_valid_confident_rows_take_the_model_path(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    rows = confident(estimator, raw, measures, sure=True).head(80)  # > 64: the batch code path
    out = guard.predict(rows)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out.index.equals(rows.index)
    assert (out["path"] == "model").all()
    proba = bare_proba(estimator, rows, measures)
    np.testing.assert_allclose(out["probability"], proba, rtol=0, atol=1e-12)
    assert out["prediction"].tolist() == np.where(proba >= 0.5, "malignant", "benign").tolist()
    np.testing.assert_allclose(out["confidence"], np.maximum(proba, 1 - proba), atol=1e-12)
    assert out["reason"].isna().all() and out["notes"].isna().all()
    assert (out["model"] == "breast_cancer").all() and (out["version"] == guard.version).all()
    assert re.fullmatch(r"[0-9a-f]{12}", guard.version)
    assert (out["latency_ms"] > 0).all() and out["latency_ms"].nunique() == 1
    assert out["input_hash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert out["input_hash"].nunique() == len(rows)


def test_one_row_and_many_rows_give_the_same_decisions(
    guard: GuardedModel, raw: pd.DataFrame
) -> None:
    batch = guard.predict(raw.head(100))
    singles = pd.concat([guard.predict(raw.iloc[[i]]) for i in range(0, 100, 7)])
    columns = ["prediction", "probability", "path", "reason", "input_hash", "top_features"]
    pd.testing.assert_frame_equal(batch.loc[singles.index, columns], singles[columns])


def test_bad_rows_are_rejected_with_the_column_named_and_the_others_scored(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    messy = (
        confident(estimator, raw, measures, sure=True)
        .head(8)
        .astype({"mean_texture": object, "worst_radius": object})
    )
    messy.loc[messy.index[0], "mean_radius"] = np.nan
    messy.loc[messy.index[1], "worst_area"] = -5.0
    messy.loc[messy.index[2], "mean_texture"] = "abc"
    messy.loc[messy.index[3], "worst_radius"] = True
    messy.loc[messy.index[4], "patient_id"] = "patient-4"
    messy.loc[messy.index[5], "worst_perimeter"] = 1e6
    messy["comment"] = "sent by a newer client"
    out = guard.predict(messy)
    expected = {
        0: "mean_radius: is null",
        1: "worst_area: -5 is below the minimum 0",
        2: "mean_texture: 'abc' is a str, expected a number",
        3: "worst_radius: True is a bool, expected a number",
        4: "patient_id: 'patient-4' does not match '^P[0-9]{4}$'",
        5: "worst_perimeter: 1e+06 is above the maximum",
    }
    for position, reason in expected.items():
        row = out.iloc[position]
        assert row["path"] == "rejected" and reason in row["reason"], row["reason"]
        assert (
            pd.isna(row["prediction"])
            and pd.isna(row["probability"])
            and pd.isna(row["top_features"])
        )
    assert (out["path"].iloc[6:] == "model").all()
    assert (out["notes"] == "ignored unknown columns: comment").all()


def test_missing_required_column_rejects_every_row(guard: GuardedModel, raw: pd.DataFrame) -> None:
    out = guard.predict(raw.head(3).drop(columns=["worst_area"]))
    assert (out["path"] == "rejected").all()
    assert out["reason"].str.contains("worst_area: missing column").all()


def test_unsure_rows_take_the_fallback_with_the_rule_as_reason(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    unsure = confident(estimator, raw, measures, sure=False)
    assert len(unsure) >= 5  # the data has borderline cases
    out = guard.predict(unsure)
    assert (out["path"] == "fallback").all()
    assert out["reason"].str.startswith("confidence below 0.9; rule ").all()
    assert (out["confidence"] < 0.9).all()
    expected = np.where(unsure["worst_concave_points"] > 0.142, "malignant", None)
    large = (unsure["worst_area"] > 880) & (unsure["worst_concavity"] >= 0.3)
    expected = np.where((expected == None) & large, "malignant", expected)  # noqa: E711
    expected = np.where(expected == None, "benign", expected)  # noqa: E711
    assert out["prediction"].tolist() == expected.tolist()
    by_rule = out["reason"].str.extract(r"rule (\w+):")[0]
    assert set(by_rule) <= {"many_concave_points", "large_and_irregular", "default"} | {np.nan}
    first = out["reason"][unsure["worst_concave_points"] > 0.142]
    assert first.str.endswith("rule many_concave_points: worst_concave_points > 0.142").all()
    assert out["top_features"].notna().all()  # the model did score them


def test_paths_add_up_to_the_input_rows(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    batch = pd.concat(
        [
            confident(estimator, raw, measures, True).head(50),
            confident(estimator, raw, measures, False).head(10),
            raw.head(20).assign(worst_area=-1.0),
        ]
    )
    batch.index = [f"r{i}" for i in range(len(batch))]  # any index is kept
    out = guard.predict(batch)
    counts = out["path"].value_counts().to_dict()
    assert counts == {"model": 50, "fallback": 10, "rejected": 20}
    assert out.index.tolist() == batch.index.tolist()


def test_a_failing_model_sends_rows_to_the_fallback(
    contract: InputContract, rules_file: Path, raw: pd.DataFrame, measures: list[str]
) -> None:
    class Broken:
        classes_ = np.array([0, 1])
        feature_names_in_ = np.array(measures, dtype=object)

        def predict_proba(self, x: Any) -> np.ndarray:
            raise RuntimeError("weights not loaded")

    guard = build_guarded_model(Broken(), config(contract, rules_file))
    out = guard.predict(raw.head(5))
    assert (out["path"] == "fallback").all()
    assert (
        out["reason"].str.startswith("model error: RuntimeError: weights not loaded; rule ").all()
    )
    assert out["prediction"].isin(["benign", "malignant"]).all() and out["confidence"].isna().all()


def test_output_contract_violations_are_not_trusted(
    contract: InputContract, rules_file: Path, raw: pd.DataFrame, measures: list[str]
) -> None:
    class Overconfident:
        classes_ = np.array([0, 1])
        feature_names_in_ = np.array(measures, dtype=object)

        def predict_proba(self, x: Any) -> np.ndarray:
            return np.tile([-0.5, 1.5], (len(x), 1))

    guard = build_guarded_model(Overconfident(), config(contract, rules_file))
    out = guard.predict(raw.head(4))
    assert (out["path"] == "fallback").all()
    assert out["reason"].str.startswith("output contract: probabilities outside [0, 1]").all()


def test_features_that_are_not_finite_are_rejected(guard: GuardedModel, raw: pd.DataFrame) -> None:
    row = raw.head(2).copy()
    row.loc[row.index[0], "mean_area"] = 0.0  # allowed by the contract, but log(0) = -inf
    out = guard.predict(row)
    assert out["path"].tolist()[0] == "rejected"
    assert (
        out["reason"].iloc[0]
        == "features not finite after preprocessing: compactness_ratio, log_mean_area"
    )
    assert out["path"].iloc[1] != "rejected"


def test_python_fallback_and_labels_outside_the_contract(
    contract: InputContract, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    def refer(rows: pd.DataFrame) -> pd.DataFrame:
        labels = np.where(rows["worst_area"] > 1000, "malignant", "refer")
        return pd.DataFrame({"prediction": labels, "reason": "area check"}, index=rows.index)

    guard = build_guarded_model(
        estimator, config(contract, Path("unused"), fallback=refer), preprocess=add_features
    )
    unsure = confident(estimator, raw, measures, sure=False)
    out = guard.predict(unsure)
    big = (unsure["worst_area"] > 1000).to_numpy()
    assert (out["path"][big] == "fallback").all() and (out["prediction"][big] == "malignant").all()
    assert out["reason"][big].str.endswith("; area check").all()
    assert (out["path"][~big] == "rejected").all()
    assert out["reason"][~big].str.endswith("fallback returned 'refer', not an allowed label").all()


def test_without_a_fallback_unsure_rows_get_no_prediction(
    contract: InputContract, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    guard = build_guarded_model(
        estimator, config(contract, Path("unused"), fallback=None), preprocess=add_features
    )
    out = guard.predict(confident(estimator, raw, measures, sure=False).head(3))
    assert (out["path"] == "fallback").all() and out["prediction"].isna().all()
    assert out["reason"].str.endswith("no fallback configured").all()


def test_records_and_a_single_record_are_accepted(guard: GuardedModel, raw: pd.DataFrame) -> None:
    records = raw.head(2).to_dict(orient="records")
    assert guard.predict(records)["path"].tolist() == guard.predict(raw.head(2))["path"].tolist()
    assert len(guard.predict(records[0])) == 1
    served = guard(raw.head(1).assign(worst_area=-1.0))  # the MLflow entry point
    assert served["prediction"].iloc[0] is None and served["probability"].iloc[0] is None


# ----------------------------------------------------------------------------- records


def test_top_features_are_coefficient_times_standardised_value(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    rows = raw.head(70)
    out = guard.predict(rows)
    scaler, model = estimator[0], estimator[-1]
    features = add_features(rows[measures].copy())
    contributions = (features.to_numpy() - scaler.mean_) / scaler.scale_ * model.coef_[0]
    names = list(features.columns)
    for i in (0, 1, 69):
        top = json.loads(out["top_features"].iloc[i])
        order = np.argsort(-np.abs(contributions[i]))[:3]
        assert list(top) == [names[j] for j in order]
        assert list(top.values()) == pytest.approx(
            [round(contributions[i][j], 3) for j in order], abs=1e-9
        )


def test_explanations_can_be_off_and_need_a_linear_model(
    contract: InputContract, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    rows = raw.head(70)
    off = build_guarded_model(
        estimator,
        config(contract, Path("x"), fallback=None, explain={"top_k": 0}),
        preprocess=add_features,
    )
    assert off.predict(rows)["top_features"].isna().all() and not off.describe()["explained"]
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    forest.fit(add_features(raw[measures].copy()), (raw["diagnosis"] == "malignant").astype(int))
    guard = build_guarded_model(
        forest, config(contract, Path("x"), fallback=None), preprocess=add_features
    )
    out = guard.predict(rows)
    assert out["top_features"].isna().all() and out["path"].isin(["model", "fallback"]).all()
    expected = forest.predict_proba(add_features(rows[measures].copy()))[:, 1]
    np.testing.assert_allclose(out["probability"], expected)


def test_input_hash_identifies_the_record_not_its_layout(
    guard: GuardedModel, raw: pd.DataFrame
) -> None:
    rows = raw.head(100)
    base = guard.predict(rows)["input_hash"]
    shuffled = guard.predict(rows[rows.columns[::-1]].astype({"patient_id": object}))["input_hash"]
    alone = guard.predict(rows.iloc[[5]])["input_hash"].iloc[0]
    changed = guard.predict(rows.iloc[[5]].assign(mean_radius=rows["mean_radius"].iloc[5] + 1e-9))
    assert (base == shuffled).all() and base.iloc[5] == alone
    assert changed["input_hash"].iloc[0] != alone
    extra = guard.predict(rows.iloc[[5]].assign(comment="x"))["input_hash"].iloc[0]
    assert extra == alone  # unknown columns are not part of the record


def test_describe_is_json_and_lists_what_is_not_checked_online(guard: GuardedModel) -> None:
    described = json.loads(json.dumps(guard.describe()))
    skipped = {(s["type"], s["column"]) for s in described["input_contract"]["skipped"]}
    assert skipped == {
        ("expect_table_row_count_to_be_between", ""),
        ("expect_column_values_to_be_unique", "patient_id"),
        ("expect_column_values_to_be_in_set", "diagnosis"),
        ("expect_column_mean_to_be_between", "mean_radius"),
    }
    assert described["explained"] is True and described["min_confidence"] == 0.9


# ----------------------------------------------------------------------------- compiling


def test_compiled_rules_merge_expectations() -> None:
    contract = compile_expectations(
        [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0, "max_value": 10}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 2, "strict_min": True}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "c", "value_set": ["a", "b", "z"]}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "c", "value_set": ["a", "b"]}},
            {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "c", "value_set": ["b"]}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "c"}, "severity": "info"},
            {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": "d", "type_list": ["int", "datetime64"]}},
        ],
        name="s",
    )  # fmt: skip
    rules = {r.name: r for r in contract.columns}
    assert (rules["x"].min_value, rules["x"].strict_min, rules["x"].max_value) == (2.0, True, 10.0)
    assert (
        rules["c"].value_set == ("a", "b")
        and rules["c"].forbidden == ("b",)
        and not rules["c"].not_null
    )
    assert "d" not in rules and len(contract.skipped) == 2
    out = contract.check(pd.DataFrame({"x": [2.0, 2.5, 11.0], "c": ["a", "b", "q"]}))
    assert out.valid.tolist() == [False, False, False]
    assert out.reasons.tolist() == [
        "x: 2 is below the minimum 2",
        "c: 'b' is a forbidden value",
        "x: 11 is above the maximum 10; c: 'q' is not one of the allowed values",
    ]  # fmt: skip


def test_a_column_cannot_be_both_numeric_and_string() -> None:
    with pytest.raises(ContractError, match="column 'x' is declared both numeric and str"):
        compile_expectations(
            [
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0}},
                {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "x", "regex": "a"}},
            ],
            name="s",
        )  # fmt: skip


def test_features_the_contract_cannot_provide_fail_at_build_time(
    suite: list[dict[str, Any]], estimator: Any, rules_file: Path
) -> None:
    without = [e for e in suite if e["kwargs"].get("column") != "worst_area"]
    without[0] = {
        "type": "expect_table_columns_to_match_set",
        "kwargs": {"column_set": ["patient_id", "mean_radius"]},
    }
    contract = compile_expectations(without, name="partial")
    with pytest.raises(SpecError, match="worst_area"):
        build_guarded_model(estimator, config(contract, rules_file), preprocess=add_features)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"confidance": 0.7}, "unknown key 'confidance'"),
        (
            {"output_contract": {"labels": {0: "benign"}}},
            "labels do not cover the model's classes \\['1'\\]",
        ),
        (
            {"output_contract": {"labels": LABELS, "threshold": 1.5}},
            "threshold must be a number in \\(0, 1\\)",
        ),
        (
            {"confidence": {"min_confidence": "high"}},
            "min_confidence must be a number in \\[0, 1\\]",
        ),
        ({"fallback": {"rulez": "x.yaml"}}, "invalid fallback"),
        ({"explain": {"top_k": -1}}, "top_k must be an integer >= 0"),
    ],
)
def test_config_errors_name_the_field(
    contract: InputContract,
    rules_file: Path,
    estimator: Any,
    overrides: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(SpecError, match=message):
        build_guarded_model(
            estimator, config(contract, rules_file, **overrides), preprocess=add_features
        )


def test_guard_config_from_yaml_or_python(
    tmp_path: Path, contract: InputContract, estimator: Any
) -> None:
    (tmp_path / "guard.yaml").write_text(
        "guard:\n  model_name: bc\n  confidence: {min_confidence: 0.8}\n"
    )
    assert load_guard_config(tmp_path / "guard.yaml") == {
        "model_name": "bc",
        "confidence": {"min_confidence": 0.8},
    }
    (tmp_path / "guard.py").write_text(
        "def fallback(rows):\n    return ['benign'] * len(rows)\n\nGUARD = {'model_name': 'bc', 'fallback': fallback}\n"
    )
    loaded = load_guard_config(tmp_path / "guard.py")
    guard = build_guarded_model(
        estimator,
        {**loaded, "input_contract": contract, "output_contract": {"labels": LABELS}},
        preprocess=add_features,
    )
    assert (
        guard.fallback is not None
        and guard.fallback.decide(pd.DataFrame(index=[0, 1]))[0].tolist() == ["benign"] * 2
    )
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_guard_config(tmp_path / "bad.yaml")


# ----------------------------------------------------------------------------- rules files


def test_rules_file_first_matching_rule_wins(rules_file: Path) -> None:
    rules = load_rules(
        rules_file,
        allowed_labels=["benign", "malignant"],
        known_columns=["worst_concave_points", "worst_area", "worst_concavity"],
    )
    rows = pd.DataFrame(
        {
            "worst_concave_points": [0.2, 0.1, 0.1, np.nan],
            "worst_area": [900.0, 900.0, 500.0, 900.0],
            "worst_concavity": [0.4, 0.4, 0.4, 0.1],
        }
    )
    labels, reasons = rules.decide(rows)
    assert labels.tolist() == ["malignant", "malignant", "benign", "benign"]
    assert reasons.tolist()[:3] == [
        "rule many_concave_points: worst_concave_points > 0.142",
        "rule large_and_irregular: large, irregular nuclei",
        "rule default: no suspicious measurement",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [\n  - {when: x > 1, label: malignant\n", "invalid YAML"),
        ("rulez: []\n", "(?s)top level: unknown key 'rulez'.*did you mean 'rules'"),
        ("rules: []\n", "'rules' must be a non-empty list"),
        (
            "rules:\n  - {when: worst_area > 1, lable: malignant}\n",
            "(?s)rules\\[0\\]: unknown key 'lable'.*did you mean 'label'",
        ),
        ("rules:\n  - {when: worst_area > 1}\n", "rules\\[0\\]: missing key 'label'"),
        (
            "rules:\n  - {when: worst_area is big, label: malignant}\n",
            "rules\\[0\\].when: invalid condition 'worst_area is big'",
        ),
        ("rules:\n  - {when: worst_area > big, label: malignant}\n", "> needs a number, not 'big'"),
        (
            "rules:\n  - {when: worst_aera > 1, label: malignant}\n",
            "(?s)unknown column 'worst_aera'.*did you mean 'worst_area'",
        ),
        (
            "rules:\n  - {when: worst_area > 1, label: malign}\n",
            "(?s)rules\\[0\\].label: label 'malign' is not an allowed label.*did you mean 'malignant'",
        ),
        (
            "rules:\n  - {when: worst_area > 1, label: benign}\ndefault: {label: maybe}\n",
            "default.label: label 'maybe' is not an allowed label",
        ),
    ],
)
def test_rules_file_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as caught:
        load_rules(path, allowed_labels=["benign", "malignant"], known_columns=["worst_area"])
    assert str(path) in str(caught.value)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("name: x\nrules:\n  - when: a > 1\n    label: [unclosed\n")
    with pytest.raises(SpecError, match=r"rules.yaml: line \d+: invalid YAML"):
        load_rules(path)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read fallback rules"):
        load_rules(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- large batches


def test_large_batch_explanations_match_a_per_row_sort(
    guard: GuardedModel, estimator: Any, raw: pd.DataFrame, measures: list[str]
) -> None:
    """Batches large enough for the 32-bit top-k scan (and the 64-bit one of its close calls)
    name the same features, in the same order, as sorting each row's contributions."""
    rng = np.random.default_rng(7)
    rows = raw.iloc[rng.integers(0, len(raw), 40_000)].reset_index(drop=True)
    rows[measures] = rows[measures] * rng.uniform(0.97, 1.03, (len(rows), len(measures)))
    out = guard.predict(rows)
    scaler, model = estimator[0], estimator[-1]
    features = add_features(rows[measures].copy())
    contributions = (features.to_numpy() - scaler.mean_) / scaler.scale_ * model.coef_[0]
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :3]
    names = np.array(features.columns)
    explained = out["top_features"].notna().to_numpy()
    assert explained.sum() > 39_000
    for i in np.flatnonzero(explained)[::97]:
        top = json.loads(out["top_features"].iloc[i])
        assert list(top) == names[order[i]].tolist()
        assert list(top.values()) == pytest.approx(
            [round(c, 3) for c in contributions[i, order[i]]], abs=1e-9
        )


def test_multiclass_explanations_use_the_predicted_class(
    raw: pd.DataFrame, measures: list[str]
) -> None:
    """A 3-class model, in a batch large enough for the top-k scan: each row is explained
    with the coefficients of the class it was predicted as."""
    x = raw[measures[:6]]
    y = pd.qcut(raw["mean_area"], 3, labels=False)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    contract = compile_expectations(
        [{"type": "expect_column_to_exist", "kwargs": {"column": c}} for c in measures[:6]],
        name="three",
    )
    guard = build_guarded_model(
        model, {"input_contract": contract, "output_contract": {"labels": ["s", "m", "l"]}}
    )
    rows = pd.concat([x] * 4, ignore_index=True)
    out = guard.predict(rows)
    z = model[0].transform(rows)
    chosen = model.predict_proba(rows).argmax(axis=1)
    contributions = z * model[-1].coef_[chosen]
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :3]
    for i in range(0, len(rows), 37):
        top = json.loads(out["top_features"].iloc[i])
        assert list(top) == [measures[j] for j in order[i]]


def test_a_record_that_breaks_the_guard_is_rejected_alone(
    guard: GuardedModel, raw: pd.DataFrame
) -> None:
    """A value the checks cannot even compare (its comparison raises) rejects its own record
    with the error as the reason; the other records of the batch are decided as usual."""

    class Unorderable(int):
        def __lt__(self, other: Any) -> bool:
            raise TypeError("cannot be ordered")

        __le__ = __gt__ = __ge__ = __lt__

    batch = raw.head(3).astype({"mean_area": object})
    batch.loc[batch.index[1], "mean_area"] = Unorderable(-5)
    out = guard.predict(batch)
    assert len(out) == 3 and out["path"].iloc[1] == "rejected"
    assert out["reason"].iloc[1] == "the guard failed on this record: TypeError: cannot be ordered"
    assert "rejected" not in out["path"].iloc[[0, 2]].tolist()
    assert out["input_hash"].str.len().eq(16).all()


def test_the_version_names_the_rules_not_where_their_file_is(
    estimator: Any, contract: InputContract, rules_file: Path, tmp_path: Path
) -> None:
    """The same model and rules are the same version in another checkout (another absolute
    path); a changed rule is another version."""
    moved = tmp_path / "elsewhere" / rules_file.name
    moved.parent.mkdir()
    shutil.copy(rules_file, moved)
    here = build_guarded_model(estimator, config(contract, rules_file), preprocess=add_features)
    there = build_guarded_model(estimator, config(contract, moved), preprocess=add_features)
    assert here.version == there.version
    moved.write_text(moved.read_text().replace(">= 0.3]", ">= 0.35]"))
    assert ">= 0.35]" in moved.read_text()
    edited = build_guarded_model(estimator, config(contract, moved), preprocess=add_features)
    assert edited.version != here.version
