"""The gate on a real MLflow server with real models: slices, noise, first model, tasks, report, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, aliases, audit_events, call
from sklearn.tree import DecisionTreeClassifier

from model_lifecycle.edges.commands import compare_baseline
from model_lifecycle.edges.commands import evaluate
from model_lifecycle.edges.commands import register
from model_lifecycle.edges.commands import transition
from model_lifecycle.core import verdict as verdicts
from model_lifecycle.api.train import pip_requirements, trusted_types_for

GOLDEN = Path(__file__).parent / "golden"


def log_and_register(tracking_uri: str, name: str, model, X: pd.DataFrame) -> str:
    """Log a fitted model the way a training job would, then register it with register.py."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("gate-tests")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", signature=mlflow.models.infer_signature(X.head(20), model.predict(X.head(20))),
            skops_trusted_types=trusted_types_for(model), pip_requirements=pip_requirements(),
        )
    code, payload = call(register, ["--tracking-uri", tracking_uri, "--model", name, "--model-uri", info.model_uri])
    assert code == 0, payload
    return payload["version"]


def write_policy(tmp_path: Path, holdout: Path, task: str, gates: list, **extra) -> Path:
    policy = {"version": 1, "task": task, "holdout": {"path": str(holdout), "target": "y"}, "gates": gates, **extra}
    path = tmp_path / "model-policy.yml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def gate(tracking_uri, name, candidate, policy, tmp_path, *extra):
    return call(compare_baseline, [
        "--tracking-uri", tracking_uri, "--model", name, "--candidate", candidate, "--policy", str(policy),
        "--output", str(tmp_path / "verdict.json"), "--report", str(tmp_path / "report.md"), *extra,
    ])


def tree(X: pd.DataFrame, labels: np.ndarray) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, labels)


@pytest.fixture(scope="module")
def sliced_world():
    """Group A (90%) follows x1 > 0, group B (10%) follows x2 > 0.

    The champion learned A with a shifted threshold (about 12% wrong there) and B exactly; the
    candidate learned A exactly but applies A's rule to B (about half wrong there). The candidate
    is better overall and clearly worse for group B."""
    rng = np.random.default_rng(7)

    def sample(n: int) -> pd.DataFrame:
        frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
        frame["is_b"] = (rng.random(n) < 0.1).astype(float)
        frame["y"] = np.where(frame.is_b == 1, frame.x2 > 0, frame.x1 > 0).astype(int)
        frame["group"] = np.where(frame.is_b == 1, "B", "A")
        return frame

    train, holdout = sample(20000), sample(3000)
    X = train[["x1", "x2", "is_b"]]
    champion = tree(X, np.where(train.is_b == 1, train.x2 > 0, train.x1 > 0.3).astype(int))
    candidate = tree(X, (train.x1 > 0).astype(int))
    return X, champion, candidate, holdout


def test_better_overall_but_worse_for_one_slice_is_rejected(client, tracking_uri, model_name, tmp_path, sliced_world):
    X, champion, candidate, holdout = sliced_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    v2 = log_and_register(tracking_uri, model_name, candidate, X)
    client.set_registered_model_alias(model_name, "champion", v1)
    policy = write_policy(tmp_path, holdout_path, "binary", [
        {"metric": "accuracy", "improvement": {"absolute": 0.01}},
        {"metric": "accuracy", "guardrail": {"max_drop": 0.05, "slices": True}},
    ], slices={"columns": ["group"], "min_size": 20})

    code, result = gate(tracking_uri, model_name, v2, policy, tmp_path, "--stage")
    assert code == 1 and result["passed"] is False
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    overall = {g["kind"]: g for g in verdict["gates"] if g["slice"] == "overall"}
    assert overall["improvement"]["passed"] and overall["improvement"]["delta"] > 0.03
    failed = [g for g in verdict["gates"] if not g["passed"]]
    assert [(g["kind"], g["slice"]) for g in failed] == [("guardrail", "group.B")]
    assert failed[0]["delta"] < -0.3
    report = (tmp_path / "report.md").read_text()
    assert "fails the promotion gate" in report and "group.B" in report.split("### Overall")[0]
    # nothing staged, and the verdict is attached to the version
    assert "challenger" not in aliases(client, model_name)
    assert client.get_model_version(model_name, v2).tags["lifecycle.verdict.passed"] == "false"

    # the failed verdict keeps v2 out of staging and production unless forced, with a reason, recorded
    base = ["--tracking-uri", tracking_uri, "--model", model_name, "--version", v2]
    code, refused = call(transition, [*base, "--to", "staging"])
    assert code == 1 and "its gate verdict failed" in refused["error"]
    code, refused = call(transition, [*base, "--to", "production", "--force", "--reason", "x", "--skip-card-check"])
    assert code == 0  # --force overrides, and says so in the audit record
    event = audit_events(client, model_name)[-1]
    assert event["details"]["forced"] and event["details"]["verdict"] == "failed"
    assert aliases(client, model_name)["champion"] == v2
    code, refused = call(transition, [*base[:4], "--version", v1, "--to", "staging", "--force"])
    assert code == 2 and "--force needs --reason" in refused["error"]


def test_report_layout_matches_golden_and_values_come_from_the_run(tracking_uri, model_name, tmp_path, sliced_world):
    X, champion, candidate, holdout = sliced_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    v2 = log_and_register(tracking_uri, model_name, candidate, X)
    policy = write_policy(tmp_path, holdout_path, "binary", [
        {"metric": "roc_auc", "floor": 0.8},
        {"metric": "accuracy", "guardrail": {"max_drop": 0.05}},
    ], slices={"columns": ["group"], "min_size": 20})
    gate(tracking_uri, model_name, v2, policy, tmp_path, "--baseline", v1, "--no-log")
    report = (tmp_path / "report.md").read_text()
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    accuracy = verdict["results"]["candidate"]["overall"]["metrics"]["accuracy"]["value"]
    assert f"| accuracy | {accuracy:.4f} |" in report
    layout = re.sub(r"[-+]?\d+(\.\d+)?", "#", report.replace(model_name, "MODEL"))
    layout = re.sub(r"`[^`]*`", "`…`", layout)
    layout = re.sub(r"\(sha#:[0-9a-f#]+\)", "(sha)", layout)
    layout = re.sub(r"m-[0-9a-f]+", "m-…", layout)
    golden = GOLDEN / "report_layout.md"
    if not golden.exists():  # first run writes it; review and commit it
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(layout)
    assert layout == golden.read_text()


@pytest.fixture(scope="module")
def noise_world():
    """A tiny hold-out where the candidate is right on 3 more rows than the champion."""
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x1": rng.normal(size=20000), "x2": rng.normal(size=20000)})
    truth = (train.x1 > 0).astype(int)
    champion = tree(train, (train.x1 > 0.10).astype(int))
    candidate = tree(train, (train.x1 > 0.05).astype(int))
    x1 = np.concatenate([[0.06, 0.07, 0.08], rng.choice([-1, 1], 57) * rng.uniform(0.3, 2.0, 57)])
    holdout = pd.DataFrame({"x1": x1, "x2": rng.normal(size=60)})
    holdout["y"] = (holdout.x1 > 0).astype(int)
    del truth
    return train, champion, candidate, holdout


@pytest.mark.parametrize("mode, expected", [("point", 0), ("analytic", 1), ("bootstrap", 1)])
def test_improvement_by_noise_passes_point_mode_and_fails_statistical_mode(
    tracking_uri, model_name, tmp_path, noise_world, mode, expected
):
    train, champion, candidate, holdout = noise_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, train)
    v2 = log_and_register(tracking_uri, model_name, candidate, train)
    policy = write_policy(tmp_path, holdout_path, "binary", [{"metric": "accuracy", "improvement": {"absolute": 0.001}}],
                          statistics={"mode": mode, "bootstrap_samples": 500})
    code, result = gate(tracking_uri, model_name, v2, policy, tmp_path, "--baseline", v1, "--no-log")
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    improvement = verdict["gates"][0]
    assert improvement["delta"] == pytest.approx(3 / 60)
    assert code == expected, result
    if mode != "point":
        low, high = improvement["interval"]
        assert low <= 0 < high and "noise" in improvement["reason"]


def test_first_model_only_floors_apply_and_pass_stages_it(client, tracking_uri, model_name, tmp_path, sliced_world):
    X, champion, _, holdout = sliced_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    gates = [{"metric": "roc_auc", "floor": 0.99}, {"metric": "accuracy", "improvement": {"absolute": 0.01}}]
    code, _ = gate(tracking_uri, model_name, v1, write_policy(tmp_path, holdout_path, "binary", gates), tmp_path, "--stage")
    assert code == 1 and aliases(client, model_name) == {}
    gates[0]["floor"] = 0.8
    code, result = gate(tracking_uri, model_name, v1, write_policy(tmp_path, holdout_path, "binary", gates), tmp_path, "--stage")
    assert code == 0 and result["baseline"] is None and result["staged"]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert [g.get("skipped", False) for g in verdict["gates"]] == [False, True]
    assert aliases(client, model_name) == {"challenger": v1}
    stage_event = audit_events(client, model_name)[-1]
    assert stage_event["action"] == "stage"
    assert stage_event["evidence"] == {"verdict": verdicts.digest(verdict)}
    assert client.get_model_version(model_name, v1).tags["lifecycle.verdict.sha256"] == verdicts.digest(verdict)


def test_evaluation_run_logs_slice_metrics_linked_to_the_version(client, tracking_uri, model_name, tmp_path, sliced_world):
    X, champion, _, holdout = sliced_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    policy = write_policy(tmp_path, holdout_path, "binary", [{"metric": "roc_auc", "floor": 0.5}],
                          slices={"columns": ["group"], "intersections": [], "min_size": 20})
    code, result = call(evaluate, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{v1}",
                                   "--policy", str(policy), "--output", str(tmp_path / "eval.json")])
    assert code == 0, result
    run = client.get_run(result["evaluation_run_id"])
    assert run.data.tags["lifecycle.model"] == model_name and run.data.tags["lifecycle.version"] == v1
    metrics = run.data.metrics
    for key in ("accuracy", "accuracy/group.A", "accuracy/group.B", "roc_auc_ci_low/group.B", "support/group.B"):
        assert key in metrics
    assert metrics["support/group.A"] + metrics["support/group.B"] == metrics["support"] == len(holdout)
    assert client.get_model_version(model_name, v1).tags["lifecycle.last_evaluation_run_id"] == run.info.run_id


def test_multiclass_and_regression_policies(tracking_uri, model_name, tmp_path):
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    iris = load_iris(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_").replace("(cm)", "cm"))
    iris = iris.rename(columns={"target": "y"})
    iris["species_group"] = np.where(iris.y == 0, "setosa", "other")
    X = iris.drop(columns=["y", "species_group"])
    versions = [log_and_register(tracking_uri, model_name, LogisticRegression(C=c, max_iter=2000).fit(X, iris.y), X)
                for c in (0.01, 1.0)]
    iris.to_csv(tmp_path / "iris.csv", index=False)
    policy = write_policy(tmp_path, tmp_path / "iris.csv", "multiclass", [
        {"metric": "accuracy", "floor": 0.8}, {"metric": "f1_macro", "improvement": {"absolute": 0.001}},
        {"metric": "log_loss", "guardrail": {"max_drop": 0.0}},
    ], slices={"columns": ["species_group"], "min_size": 10})
    code, result = gate(tracking_uri, model_name, versions[1], policy, tmp_path, "--baseline", versions[0], "--no-log")
    assert code == 0, result
    metrics = json.loads((tmp_path / "verdict.json").read_text())["results"]["candidate"]["overall"]["metrics"]
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted", "log_loss"} and metrics["accuracy"]["value"] > 0.9

    diabetes = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    Xd = diabetes.drop(columns=["y"])
    name = model_name + "-reg"
    strong = log_and_register(tracking_uri, name, LinearRegression().fit(Xd, diabetes.y), Xd)
    weak = log_and_register(tracking_uri, name, Ridge(alpha=50).fit(Xd, diabetes.y), Xd)
    diabetes.to_csv(tmp_path / "diabetes.csv", index=False)
    policy = write_policy(tmp_path, tmp_path / "diabetes.csv", "regression", [{"metric": "rmse", "guardrail": {"max_drop": 1.0}}])
    code, result = gate(tracking_uri, name, weak, policy, tmp_path, "--baseline", strong, "--no-log")
    assert code == 1 and "rmse" in result["failures"][0]
    rmse = json.loads((tmp_path / "verdict.json").read_text())["gates"][0]
    assert rmse["candidate"] > rmse["baseline"] and rmse["higher_is_better"] is False


def test_point_decisions_agree_with_mlflow_validate_evaluation_results(tracking_uri, model_name, tmp_path, sliced_world):
    """Floors and improvements use MetricThreshold's semantics: MLflow decides the same on our numbers."""
    from mlflow.models.evaluation import EvaluationResult, MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    X, champion, candidate, holdout = sliced_world
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    v2 = log_and_register(tracking_uri, model_name, candidate, X)
    cases = [({"floor": 0.9}, {"threshold": 0.9}), ({"floor": 0.99}, {"threshold": 0.99}),
             ({"improvement": {"absolute": 0.01}}, {"min_absolute_change": 0.01}),
             ({"improvement": {"absolute": 0.2}}, {"min_absolute_change": 0.2}),
             ({"improvement": {"relative": 0.5}}, {"min_relative_change": 0.5})]
    for ours, theirs in cases:
        policy = write_policy(tmp_path, tmp_path / "holdout.csv", "binary", [{"metric": "accuracy", **ours}])
        code, _ = gate(tracking_uri, model_name, v2, policy, tmp_path, "--baseline", v1, "--no-log")
        values = json.loads((tmp_path / "verdict.json").read_text())["results"]
        cand = EvaluationResult({"accuracy": values["candidate"]["overall"]["metrics"]["accuracy"]["value"]}, {})
        base = EvaluationResult({"accuracy": values["baseline"]["overall"]["metrics"]["accuracy"]["value"]}, {})
        try:
            mlflow.validate_evaluation_results({"accuracy": MetricThreshold(greater_is_better=True, **theirs)}, cand, base)
            mlflow_code = 0
        except ModelValidationFailedException:
            mlflow_code = 1
        assert code == mlflow_code, (ours, code, mlflow_code)


# --- bad input -------------------------------------------------------------------------------------


@pytest.fixture()
def small_setup(tracking_uri, model_name, tmp_path, noise_world):
    train, champion, _, holdout = noise_world
    version = log_and_register(tracking_uri, model_name, champion, train)
    return version, holdout


def _policy_for(tmp_path, frame, gates=None, **extra):
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    return write_policy(tmp_path, tmp_path / "holdout.csv", "binary", gates or [{"metric": "accuracy", "floor": 0.5}], **extra)


@pytest.mark.parametrize("case, code, message", [
    ("missing target", 2, "has no target column 'y'"),
    ("missing slice", 2, "has no slice column 'region'"),
    ("empty", 2, "has no rows"),
    ("unseen labels", 2, "labels the model"),
    ("missing feature", 2, "lacks column 'x2' that the signature"),
])
def test_bad_hold_out_exits_2_and_stages_nothing(client, tracking_uri, model_name, tmp_path, small_setup, case, code, message):
    version, holdout = small_setup
    frame, extra = holdout.copy(), {}
    if case == "missing target":
        frame = frame.drop(columns=["y"])
    elif case == "missing slice":
        extra = {"slices": {"columns": ["region"]}}
    elif case == "empty":
        frame = frame.head(0)
    elif case == "unseen labels":
        frame.loc[0, "y"] = 2
    elif case == "missing feature":
        frame = frame.drop(columns=["x2"])
    policy = _policy_for(tmp_path, frame, **extra)
    result_code, result = gate(tracking_uri, model_name, version, policy, tmp_path, "--stage")
    assert result_code == code and message in result["error"], result
    assert aliases(client, model_name) == {}


def test_policy_errors_name_the_field_the_line_and_the_fix(tmp_path):
    from model_lifecycle.core import policy as policies
    from model_lifecycle.errors import BadInput

    text = "version: 1\ntask: binary\nholdout: {path: h.csv, target: y}\ngates:\n  - metric: accuracy\n    floor: 0.5\n  - metric: roc_aucc\n    floor: 0.5\n"
    with pytest.raises(BadInput) as info:
        policies.parse(text, "model-policy.yml")
    assert info.value.message == (
        "model-policy.yml:7: gates[1].metric: 'roc_aucc' is not a metric of a binary classifier; did you mean 'roc_auc'?"
    )
    with pytest.raises(BadInput) as info:
        policies.parse(text.replace("floor: 0.5\n  - metric: roc_aucc", "flor: 0.5\n  - metric: roc_auc"), "p.yml")
    assert info.value.message.startswith("p.yml:6: gates[0].flor: unknown field; did you mean 'floor'?")
    with pytest.raises(BadInput) as info:
        policies.parse("task: binary\nholdout: [oops\n", "p.yml")
    assert "p.yml:3:1: not valid YAML" in info.value.message


def test_unknown_metric_in_policy_file_exits_2(tracking_uri, model_name, tmp_path, small_setup):
    version, holdout = small_setup
    policy = _policy_for(tmp_path, holdout, gates=[{"metric": "acuracy", "floor": 0.5}])
    code, result = gate(tracking_uri, model_name, version, policy, tmp_path)
    assert code == 2 and "did you mean 'accuracy'" in result["error"]


class NaNModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return np.full(len(model_input), np.nan)


def test_nan_predictions_are_the_models_fault_exit_1(client, tracking_uri, model_name, tmp_path):
    frame = pd.DataFrame({"x1": np.arange(50, dtype=float), "y": np.arange(50, dtype=float)})
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=NaNModel(), pip_requirements=["numpy"],
                                       signature=mlflow.models.infer_signature(frame[["x1"]], frame.y))
    code, payload = call(register, ["--tracking-uri", tracking_uri, "--model", model_name, "--model-uri", info.model_uri])
    policy = write_policy(tmp_path, tmp_path / "h.csv", "regression", [{"metric": "rmse", "floor": 100}])
    frame.to_csv(tmp_path / "h.csv", index=False)
    code, result = gate(tracking_uri, model_name, payload["version"], policy, tmp_path, "--stage")
    assert code == 1 and "predicted 50 NaN or infinite values" in result["error"]
    assert aliases(client, model_name) == {}


def test_model_that_fails_to_load_exits_2(client, tracking_uri, model_name, tmp_path, noise_world):
    _, _, _, holdout = noise_world
    client.create_registered_model(model_name)
    run = client.create_run(client.get_experiment_by_name("gate-tests").experiment_id)
    client.create_model_version(model_name, f"runs:/{run.info.run_id}/no-model-here", run_id=run.info.run_id)
    policy = _policy_for(tmp_path, holdout)
    code, result = gate(tracking_uri, model_name, "1", policy, tmp_path, "--stage")
    assert code == 2 and "failed to load" in result["error"]
    assert aliases(client, model_name) == {}


# --- findings from outside testing ---------------------------------------------------------------


@pytest.mark.parametrize("value, estimator", [
    pytest.param(np.nan, "logistic", id="nan"),
    pytest.param(np.inf, "tree", id="inf"),
    pytest.param(-np.inf, "logistic", id="minus-inf"),
])
def test_nan_or_infinite_features_are_bad_input_naming_column_and_rows(client, tracking_uri, model_name, tmp_path,
                                                                       noise_world, value, estimator):
    from sklearn.linear_model import LogisticRegression

    train, champion, _, holdout = noise_world
    model = LogisticRegression().fit(train, (train.x1 > 0).astype(int)) if estimator == "logistic" else champion
    version = log_and_register(tracking_uri, model_name, model, train)
    frame = holdout.copy()
    frame.loc[[3, 7, 11], "x2"] = value
    policy = _policy_for(tmp_path, frame)
    code, result = gate(tracking_uri, model_name, version, policy, tmp_path, "--stage")
    assert code == 2, result
    assert "hold-out feature 'x2' has 3 of 60 rows with NaN or infinite values" in result["error"]
    assert aliases(client, model_name) == {}
    code, result = call(evaluate, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{version}",
                                   "--policy", str(policy), "--output", str(tmp_path / "eval.json")])
    assert code == 2 and "hold-out feature 'x2' has 3 of 60 rows" in result["error"]


def test_a_model_that_handles_missing_values_is_not_stopped_by_them(tracking_uri, model_name, tmp_path, noise_world):
    """NaN is bad input only for a model that cannot predict on it (a decision tree routes it)."""
    train, champion, _, holdout = noise_world
    version = log_and_register(tracking_uri, model_name, champion, train)
    frame = holdout.copy()
    frame.loc[[3, 7, 11], "x2"] = np.nan
    code, result = gate(tracking_uri, model_name, version, _policy_for(tmp_path, frame), tmp_path)
    assert code == 0, result


def test_labels_in_messages_read_as_plain_values(tracking_uri, model_name, tmp_path, small_setup):
    version, holdout = small_setup
    frame = holdout.copy()
    frame.loc[0, "y"] = 2
    code, result = gate(tracking_uri, model_name, version, _policy_for(tmp_path, frame), tmp_path)
    assert code == 2 and "labels the model" in result["error"]
    assert "never saw: [2]" in result["error"] and "the model knows [0, 1]" in result["error"]
    assert "np." not in result["error"] and "int64" not in result["error"]


def test_a_failing_gate_prints_each_reason_once_and_one_error_line(tracking_uri, model_name, tmp_path, sliced_world,
                                                                    capsys):
    X, champion, candidate, holdout = sliced_world
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    v2 = log_and_register(tracking_uri, model_name, candidate, X)
    policy = write_policy(tmp_path, tmp_path / "holdout.csv", "binary", [
        {"metric": "accuracy", "guardrail": {"max_drop": 0.05, "slices": True}},
        {"metric": "roc_auc", "floor": 0.999},
    ], slices={"columns": ["group"], "min_size": 20})
    argv = ["--tracking-uri", tracking_uri, "--model", model_name, "--candidate", v2, "--baseline", v1,
            "--policy", str(policy), "--output", str(tmp_path / "verdict.json"), "--report", str(tmp_path / "r.md"),
            "--no-log"]
    capsys.readouterr()
    assert compare_baseline.main(argv) == 1
    out, err = capsys.readouterr()
    failures = json.loads((tmp_path / "verdict.json").read_text())["failures"]
    assert len(failures) == 2
    for reason in failures:
        assert (out + err).count(reason) == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {model_name} v{v2} fails the promotion gate: 2 of 4 checks failed (each reason is in "
                      f"{tmp_path / 'r.md'} and {tmp_path / 'verdict.json'})"], err
    # --json: one document whose ok agrees with passed
    code, result = gate(tracking_uri, model_name, v2, policy, tmp_path, "--baseline", v1, "--no-log")
    assert code == 1 and result["passed"] is False and result["ok"] is False and result["exit_code"] == 1
    assert result["failures"] == failures


def test_the_report_shows_the_paired_interval_of_the_gain(tracking_uri, model_name, tmp_path, noise_world):
    train, champion, candidate, holdout = noise_world
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, train)
    v2 = log_and_register(tracking_uri, model_name, candidate, train)
    policy = write_policy(tmp_path, tmp_path / "holdout.csv", "binary",
                          [{"metric": "accuracy", "improvement": {"absolute": 0.001}}], statistics={"mode": "analytic"})
    gate(tracking_uri, model_name, v2, policy, tmp_path, "--baseline", v1, "--no-log")
    low, high = json.loads((tmp_path / "verdict.json").read_text())["gates"][0]["interval"]
    report = (tmp_path / "report.md").read_text()
    gates = report.split("### Gates")[1]
    assert "| 95% CI of the gain |" in gates
    assert f"| gain ≥ 0.001 | [{low:+.4f}, {high:+.4f}] | **FAIL** |" in gates
    assert "an improvement counts only when the whole interval is above zero" in gates


def test_failing_model_checks_print_each_detail_once_and_one_error_line(tracking_uri, model_name, tmp_path,
                                                                         small_setup, capsys):
    from model_lifecycle.edges.commands import check_model

    version, holdout = small_setup
    policy = _policy_for(tmp_path, holdout, checks={"max_model_size_mb": 0.000001})
    capsys.readouterr()
    code = check_model.main(["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{version}",
                             "--policy", str(policy), "--no-tests", "--output", str(tmp_path / "checks.json")])
    out, err = capsys.readouterr()
    assert code == 1
    detail = next(c["detail"] for c in json.loads((tmp_path / "checks.json").read_text())["checks"]
                  if c["name"] == "model size")
    assert "(budget 1e-06 MB)" in detail and (out + err).count(detail) == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: models:/{model_name}/{version}: 1 of 3 checks failed (model size; details in "
                      f"{tmp_path / 'checks.json'})"], err


def test_the_repositorys_tests_run_in_the_environment_tests_requirements_names(
        tracking_uri, model_name, tmp_path, small_setup, monkeypatch):
    """tests.requirements: the check step makes the tests' own virtual environment (once per job and
    content, in a private folder under $RUNNER_TEMP) and runs tests.command (default pytest) with its
    bin first on PATH and without the toolkit's PYTHONPATH; a requirement pip can never install, a
    missing file or one outside the repository is bad input naming the key; an unreachable index is exit 3."""
    import os

    from model_lifecycle.edges.commands import check_model

    version, holdout = small_setup
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_model.py").write_text(
        "import importlib.util, os, sys\n\ndef test_in_its_own_environment():\n"
        "    assert os.environ['MODEL_URI'].startswith('models:/')\n"
        "    assert sys.prefix == os.environ['VIRTUAL_ENV'] and '/tests-' in sys.prefix\n"
        "    assert importlib.util.find_spec('model_lifecycle') is None  # not the toolkit's PYTHONPATH\n"
        "    import six  # from the requirements (pytest does not bring it)\n")
    runner = tmp_path / "runner"
    monkeypatch.setenv("RUNNER_TEMP", str(runner))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a hosted runner's python3 has no pytest
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # as the action runs the toolkit

    def check(requirements: str | None, pins: str = "") -> tuple[int, dict]:
        if pins:
            (repo / "tests" / "requirements.txt").write_text(pins)
        policy = _policy_for(tmp_path, holdout, tests={"requirements": requirements} if requirements else {})
        return call(check_model, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{version}",
                                  "--policy", str(policy), "--tests-dir", str(repo),
                                  "--output", str(tmp_path / "checks.json")])

    code, result = check(None)
    assert code == 2 and "tests command 'pytest' not found" in result["error"] and "tests.requirements" in \
        json.dumps(result), result
    code, result = check("tests/requirements.txt", "pytest==9.2.0\nsix\n")
    tests_check = next(c for c in result["checks"] if c["name"] == "repository tests")
    assert code == 0 and tests_check["passed"], result
    private = runner / f"model-lifecycle-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700
    made = sorted(private.glob("tests-*/"))
    assert len(made) == 1 and (made[0] / ".model-lifecycle-tests-ready").exists()
    ready = (made[0] / ".model-lifecycle-tests-ready").stat().st_mtime_ns
    assert check("tests/requirements.txt")[0] == 0  # the same content: the same environment, nothing installed
    assert (made[0] / ".model-lifecycle-tests-ready").stat().st_mtime_ns == ready
    (tmp_path / "outside.txt").write_text("six\n")
    for requirements, pins, message in (
            ("tests/requirements.txt", "pytest==0.0.0.404\n", "pip could not install it"),
            ("tests/missing.txt", "", "tests.requirements 'tests/missing.txt': no such file"),
            ("../outside.txt", "", "is outside the repository")):
        code, result = check(requirements, pins)
        assert code == 2 and message in result["error"] and "\n" not in result["error"], result
    # an index that does not answer (nothing listens there; no configured index or wheel folder beside it)
    for key, value in (("PIP_CONFIG_FILE", "/dev/null"), ("PIP_FIND_LINKS", ""),
                       ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"), ("PIP_RETRIES", "1")):
        monkeypatch.setenv(key, value)
    code, result = check("tests/requirements.txt", "six\n")
    assert code == 3 and "pip could not install it" in result["error"], result
    assert sorted(private.glob("tests-*/")) == made  # the failed ones are gone


def test_stage_without_a_recorded_verdict_is_bad_input(tracking_uri, model_name, tmp_path, sliced_world, client):
    """--no-log records no verdict, so --stage could only be refused later: say so before evaluating."""
    X, champion, candidate, holdout = sliced_world
    holdout_path = tmp_path / "holdout.csv"
    holdout.to_csv(holdout_path, index=False)
    v1 = log_and_register(tracking_uri, model_name, champion, X)
    policy = write_policy(tmp_path, holdout_path, "binary", [{"metric": "roc_auc", "floor": 0.5}])
    code, result = gate(tracking_uri, model_name, v1, policy, tmp_path, "--no-log", "--stage")
    assert code == 2 and "--stage needs the verdict recorded" in result["error"]
    assert not client.get_registered_model(model_name).aliases
    assert not (tmp_path / "verdict.json").exists()
