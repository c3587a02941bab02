"""Monitoring as a user runs it: a real MLflow server, versions that went through the real gate (which
stores their reference profiles), production windows written by a real `serve` process or as files
of the documented shape, and the registry and audit record read back with a plain MlflowClient."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import aliases, audit_events, call
from scipy import stats
from scipy.spatial.distance import jensenshannon

from model_lifecycle import tags
from model_lifecycle.api import gate, lifecycle
from model_lifecycle.core.monitoring import drift, profile
from model_lifecycle.edges.commands import archive, monitor, status

TARGET, SLICE = "target", "size_band"
SHIFTED = "mean_texture"

POLICY = """\
version: 1
task: binary
holdout: {{path: {holdout}, target: target}}
slices: {{columns: [size_band], min_size: 20}}
gates:
  - metric: roc_auc
    floor: 0.5
retention: {{stable_days: 0, min_windows: 2}}
monitoring:
  min_rows: 100
  min_slice_rows: 30
  performance:
    - metric: accuracy
      max_drop: 0.05
  action: {action}
  consecutive_breaches: {consecutive}
  cooldown_hours: {cooldown}
"""


def write_policy(tmp_path: Path, holdout: str, action: str = "rollback", consecutive: int = 1,
                 cooldown: float = 0, extra: str = "") -> str:
    path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(POLICY.format(holdout=holdout, action=action, consecutive=consecutive, cooldown=cooldown) + extra)
    return str(path)


@pytest.fixture()
def champions(tracking_uri, trained, make_versions, model_name, tmp_path):
    """n versions, each through the real gate (verdict and reference profile) and promoted in turn."""

    def make(n: int, policy_args: dict | None = None) -> tuple[list[str], str]:
        policy = write_policy(tmp_path, trained["logistic"].holdout_path, **(policy_args or {}))
        versions = make_versions(n)
        previous = "none"
        for version in versions:
            gate.compare(gate.CompareRequest(model_name, version, policy, output=str(tmp_path / "verdict.json"),
                                             report=str(tmp_path / "report.md"), stage=True, tracking_uri=tracking_uri))
            lifecycle.promote(lifecycle.PromoteRequest(
                model_name, version, expect_champion=previous, reason="monitoring test", skip_card_check=True,
                approval=lifecycle.Approval("reviewer", "local", "ok"), tracking_uri=tracking_uri))
            previous = version
        return versions, policy

    return make


def holdout_frame(trained) -> pd.DataFrame:
    return pd.read_csv(trained["logistic"].holdout_path)


def window_of(tracking_uri: str, name: str, version: str, frame: pd.DataFrame, path: Path,
              when: pd.Timestamp | None = None) -> tuple[Path, Path]:
    """A window of the documented shape (what serve captures) and its labels file, from hold-out rows:
    predictions by the version itself, labels and slice column in the labels file."""
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    features = frame.drop(columns=[TARGET, SLICE])
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    window = features.assign(request_id=ids, record=0, model_version=version,
                             timestamp=when or pd.Timestamp.now(tz="UTC"),
                             prediction=np.asarray(model.predict(features)))
    path.mkdir(parents=True, exist_ok=True)
    window.to_parquet(path / "window.parquet")
    labels = pd.DataFrame({"request_id": ids, "record": 0, TARGET: frame[TARGET].to_numpy(),
                           SLICE: frame[SLICE].to_numpy()})
    labels.to_parquet(path / "labels.parquet")
    return path / "window.parquet", path / "labels.parquet"


def run_monitor(tracking_uri: str, name: str, policy: str, window: Path, tmp_path: Path, *extra: str):
    out = tmp_path / uuid.uuid4().hex[:6]
    return call(monitor, ["--tracking-uri", tracking_uri, "--model", name, "--policy", policy, "--window", str(window),
                          "--output", f"{out}.json", "--report", f"{out}.md", *extra])


def monitoring_runs(client, name: str) -> list:
    experiment = client.get_experiment_by_name("model-monitoring")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], f"tags.`{tags.RUN_KIND}` = 'monitor'")
    return [r for r in runs if r.data.tags.get(tags.RUN_MODEL) == name]


# --- the reference profile ----------------------------------------------------------------------------


def test_the_gate_stores_a_reference_profile_with_the_version(champions, client, model_name, trained):
    (v1,), _ = champions(1)
    mv = client.get_model_version(model_name, v1)
    run_id = mv.tags[tags.PROFILE_RUN_ID]
    assert run_id == mv.tags[tags.VERDICT_RUN_ID]  # the gate's own evaluation run holds it
    text = Path(client.download_artifacts(run_id, tags.PROFILE_ARTIFACT)).read_text()
    found = json.loads(text)
    holdout = holdout_frame(trained)
    assert set(found["features"]) == set(holdout.columns) - {TARGET, SLICE}
    assert found["rows"] == len(holdout)
    assert found["prediction"]["kind"] == "categorical"
    assert {"overall", "size_band.small", "size_band.large"} <= set(found["results"])
    assert found["results"]["overall"]["metrics"]["accuracy"]["ci_low"] is not None
    assert mv.tags[tags.PROFILE_SHA256] == profile.digest(text)


def test_a_profile_of_a_million_rows_and_twenty_features_is_well_under_a_megabyte():
    rng = np.random.default_rng(0)
    features = pd.DataFrame({f"x{i}": rng.normal(size=1_000_000) for i in range(18)})
    features["country"] = rng.choice([f"c{i}" for i in range(150)], size=1_000_000)
    features["count"] = rng.poisson(3, size=1_000_000)
    from model_lifecycle.core.evaluation import Predictions

    predictions = Predictions(labels=rng.integers(0, 2, 1_000_000), scores=rng.random(1_000_000), classes=[0, 1])
    built = profile.build(model="m", version="1", task="binary", features=features, predictions=predictions,
                          results={}, holdout={"rows": 1_000_000}, slices={}, classes=[0, 1])
    size = len(profile.to_json(built).encode())
    assert size < 400_000, size


# --- the drift statistics, checked against scipy on the same data ---------------------------------------


def test_drift_statistics_equal_scipys_on_the_same_data():
    rng = np.random.default_rng(1)
    reference, window = rng.normal(size=150), rng.normal(0.4, 1.2, size=900)  # few values: exact distribution
    summary = profile.numeric_summary(reference)
    d, p = drift.ks(summary, window)
    expected = stats.ks_2samp(reference, window, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-6)
    # many values: 501 quantiles; the statistic within 1/500 of the exact one
    reference, window = rng.normal(size=200_000), rng.normal(0.05, 1, size=50_000)
    d, _ = drift.ks(profile.numeric_summary(reference), window)
    assert abs(d - stats.ks_2samp(reference, window).statistic) < 1 / 500
    # PSI and Jensen-Shannon over the reference's decile bins, by hand
    summary = profile.numeric_summary(reference)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1], method="inverted_cdf")
    r = np.histogram(reference, bins=[-np.inf, *edges, np.inf])[0] / len(reference)
    w = np.histogram(window, bins=[-np.inf, *edges, np.inf])[0] / len(window)
    shares = drift.numeric_bins(summary, window)
    assert shares == pytest.approx(w, abs=1e-4)  # right-closed bins against numpy's left-closed: ties only
    assert drift.psi(summary["proportions"], shares) == pytest.approx(np.sum((w - r) * np.log(w / r)), rel=1e-2)
    assert drift.js(summary["proportions"], shares) == pytest.approx(jensenshannon(r, w, base=2), rel=1e-2)
    # categories: chi-square against scipy.stats.chisquare of the same counts
    reference = rng.choice(list("abc"), p=[0.5, 0.3, 0.2], size=5000)
    window = rng.choice(list("abc"), p=[0.3, 0.3, 0.4], size=2000)
    summary = profile.categorical_summary(reference)
    ref_shares, counts, _, unseen = drift.categorical_shares(summary, window)
    statistic, p = drift.chi_square(ref_shares, counts)
    observed = [int((window == k).sum()) for k in summary["frequencies"]]
    expected_counts = np.array([summary["frequencies"][k] for k in summary["frequencies"]]) * len(window)
    check = stats.chisquare(observed, expected_counts)
    assert statistic == pytest.approx(check.statistic, rel=1e-3) and p == pytest.approx(check.pvalue, abs=1e-12)
    assert unseen == {}


@pytest.mark.parametrize("seed", range(4))
def test_folded_category_counts_give_the_shares_of_counting_every_value(monkeypatch, seed):
    """With a cap of 3, values of every kind the text decision depends on (fractions, inf, whole
    floats, ints beyond int64 and uint64, negatives, booleans, text) are folded across parts, yet
    the window's counts per reference category and its unseen rows are those of counting every value."""
    import random

    pool = ["a", "b", "1", "1.0", "True", 1, 2, -1, 0, 1.0, 2.0, 0.5, -0.0, True, False, np.int64(7),
            np.float64(3.0), np.float64(0.25), np.inf, -np.inf, 10**20, 2**63, 2**64, 7.0, 1e20]
    rng = random.Random(seed)
    checked = 0
    for _ in range(150):
        values = rng.sample(pool, rng.randint(2, 10)) + [
            f"id{i}" if rng.random() < 0.5 else 1000 + i + rng.choice([0, 0.5]) for i in range(rng.randint(0, 12))]
        summary = profile.categorical_summary(pd.Series([rng.choice(values) for _ in range(30)], dtype=object))
        parts = [[rng.choice(values) for _ in range(rng.randint(1, 25))] for _ in range(3)]

        def counted(cap: int) -> tuple[list[int], int]:
            monkeypatch.setattr(drift, "CATEGORY_CAP", cap)
            total = drift.category_counts([], summary["frequencies"])
            for part in parts:
                total = total + drift.category_counts(pd.Series(part, dtype=object).to_numpy(), summary["frequencies"])
            _, window, _, _, unseen_rows = drift.category_shares(summary, total.by_text(), total.folded)
            return window.tolist(), unseen_rows

        assert counted(3) == counted(10**9), (values, parts)
        checked += 1
    assert checked == 150
    # folded values that change the text of kept ones: an inf or a fraction (1.0 is then "1.0"), an
    # int beyond uint64 or beside a negative beyond int64 (the column is then objects)
    summary = profile.categorical_summary([1.0] * 10)
    for rare in ([np.inf, 0.5], [7, 2**64], [-1, 2**63], [1e20]):
        parts = [[1.0] * 5 + [10.0, 11.0, 12.0] * 3 + rare]

        def counted(cap: int) -> tuple[list[int], int]:
            monkeypatch.setattr(drift, "CATEGORY_CAP", cap)
            total = drift.category_counts(pd.Series(parts[0], dtype=object).to_numpy(), summary["frequencies"])
            return drift.category_shares(summary, total.by_text(), total.folded)[1].tolist(), total.folded

        (window, folded), (every, _) = counted(3), counted(10**9)
        assert folded > 0 and window == every == [0, 14 + len(rare)], rare


# --- windows ---------------------------------------------------------------------------------------------


def test_a_healthy_window_captured_by_a_real_serve_process_takes_no_action(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    from test_serve import Serving, http, payload

    (v1,), policy = champions(1)
    holdout = holdout_frame(trained)
    serving = Serving(tracking_uri, model_name, "--capture-dir", str(tmp_path / "capture"), "--poll-seconds", "30")
    labels = []
    try:
        serving.wait_ready()
        features = holdout.drop(columns=[TARGET, SLICE])
        for start in range(0, len(holdout), 9):
            rows = slice(start, start + 9)
            request_id = uuid.uuid4().hex
            import urllib.request

            request = urllib.request.Request(f"{serving.url}/invocations", data=payload(features.iloc[rows]),
                                             headers={"Content-Type": "application/json", "X-Request-Id": request_id})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            labels += [{"request_id": request_id, "record": i, TARGET: t, SLICE: s} for i, (t, s) in
                       enumerate(zip(holdout[TARGET].iloc[rows], holdout[SLICE].iloc[rows]))]
        assert http("GET", f"{serving.url}/health")[0] == 200
    finally:
        serving.stop()
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    before = audit_events(client, model_name)

    code, result = run_monitor(tracking_uri, model_name, policy, tmp_path / "capture", tmp_path,
                               "--labels", str(tmp_path / "labels.csv"))
    assert code == 0, result
    assert result["status"] == "healthy" and result["findings"] == [] and result["action"] == "none"
    assert result["rows"] == len(holdout) and result["labels"]["joined"] == len(holdout)
    # the live metric went through the gate's own evaluation code: on the hold-out's rows it equals the gate's
    document = json.loads(Path(result["output_path"]).read_text())
    reference = json.loads(Path(client.download_artifacts(
        client.get_model_version(model_name, v1).tags[tags.PROFILE_RUN_ID], tags.PROFILE_ARTIFACT)).read_text())
    for key in ("overall", "size_band.small", "size_band.medium"):
        live = document["performance"][key]["metrics"]["accuracy"]
        assert live["value"] == pytest.approx(reference["results"][key]["metrics"]["accuracy"]["value"]), key
        assert live["ci_low"] < live["value"] < live["ci_high"]
    assert audit_events(client, model_name) == before and aliases(client, model_name)["champion"] == v1
    mv = client.get_model_version(model_name, v1)
    assert mv.tags[tags.MONITOR_STATUS] == "healthy"
    run = client.get_run(mv.tags[tags.MONITOR_LAST_RUN_ID])
    assert run.data.tags[tags.RUN_VERSION] == v1 and run.data.tags[tags.RUN_WINDOW_STATUS] == "healthy"
    assert run.data.metrics["rows"] == len(holdout)
    # the window's end is the step of its metrics: the MLflow UI draws them as a time series
    history = client.get_metric_history(run.info.run_id, "rows")
    assert history[0].step == int(pd.Timestamp(result["window"]["end"]).timestamp())
    code, shown = call(status, ["--tracking-uri", tracking_uri, "--model", model_name])
    assert {v["version"]: v["health"] for v in shown["versions"]}[v1] == "healthy"


def test_drift_in_one_feature_is_named_and_rolls_back_to_the_previous_champion(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2), policy = champions(2)
    frame = pd.concat([holdout_frame(trained)] * 2, ignore_index=True)
    frame[SHIFTED] = frame[SHIFTED] + 3 * frame[SHIFTED].std()
    window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")

    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 1, result
    assert result["status"] == "breach"
    drifted = {f["subject"] for f in result["findings"] if f["check"] == "feature_drift"}
    assert drifted == {SHIFTED}
    assert result["action"] == "rollback" and result["rolled_back_to"] == v1
    assert aliases(client, model_name)["champion"] == v1
    event = audit_events(client, model_name)[-1]
    assert event["action"] == "rollback" and event["version"] == v1 and event["previous_version"] == v2
    assert event["evidence"] == {"monitoring_run": result["monitoring_run_id"], "findings": result["findings_sha256"]}
    assert SHIFTED in event["reason"] and "psi" in event["reason"]
    mlflow.set_tracking_uri(tracking_uri)
    assert str(mlflow.pyfunc.load_model(f"models:/{model_name}@champion").metadata.run_id) == \
        client.get_model_version(model_name, v1).run_id
    report = Path(result["report_path"]).read_text()
    assert "rollback" in report and SHIFTED in report


def test_a_performance_drop_in_one_slice_is_named_with_its_interval(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1,), policy = champions(1, {"action": "notify"})
    holdout = holdout_frame(trained)
    frame = pd.concat([holdout] * 4 + [holdout[holdout[SLICE] != "large"]] * 8, ignore_index=True)
    window, labels = window_of(tracking_uri, model_name, v1, frame, tmp_path / "w")
    found = pd.read_parquet(labels)
    large = found.index[found[SLICE] == "large"]
    flip = large[: int(len(found) * 0.025)]  # a quarter of the slice, too few rows to move the overall metric
    assert len(flip) > len(large) / 5
    found.loc[flip, TARGET] = 1 - found.loc[flip, TARGET]
    found.to_parquet(labels)

    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path, "--labels", str(labels))
    assert code == 1, result
    performance = [f for f in result["findings"] if f["check"] == "performance"]
    assert [(f["subject"], f["statistic"], f["level"]) for f in performance] == [("size_band.large", "accuracy", "breach")]
    low, high = performance[0]["interval"]
    assert low < performance[0]["value"] < high < performance[0]["threshold"]
    # fewer large tumours in this traffic moves the size features a little: warnings, never the breach
    assert {f["level"] for f in result["findings"] if f["check"] != "performance"} <= {"warning"}
    assert result["action"] == "notify" and aliases(client, model_name)["champion"] == v1


def test_a_window_too_small_is_insufficient_data_and_never_acts(champions, tracking_uri, client, model_name, trained,
                                                                tmp_path):
    (v1, v2), policy = champions(2)
    frame = holdout_frame(trained).head(60).copy()
    frame[SHIFTED] = frame[SHIFTED] + 100  # would be a breach with enough rows
    window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 0, result
    assert result["status"] == "insufficient_data" and result["action"] == "none" and not result["findings"]
    assert aliases(client, model_name)["champion"] == v2


def test_consecutive_breaches_and_cool_down_never_flap(champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2, v3), policy = champions(3, {"consecutive": 2, "cooldown": 24})
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100
    now = pd.Timestamp.now(tz="UTC")
    first, _ = window_of(tracking_uri, model_name, v3, frame, tmp_path / "w1", now - pd.Timedelta(hours=2))
    code, result = run_monitor(tracking_uri, model_name, policy, first, tmp_path)
    assert code == 1 and result["action"] == "waiting" and result["breach_streak"] == 1
    assert aliases(client, model_name)["champion"] == v3
    code, again = run_monitor(tracking_uri, model_name, policy, first, tmp_path)  # the same window twice counts once
    assert again["breach_streak"] == 1 and aliases(client, model_name)["champion"] == v3
    second, _ = window_of(tracking_uri, model_name, v3, frame, tmp_path / "w2", now - pd.Timedelta(hours=1))
    code, result = run_monitor(tracking_uri, model_name, policy, second, tmp_path)
    assert code == 1 and result["action"] == "rollback" and aliases(client, model_name)["champion"] == v2
    # v2 breaches twice too, but the model was just rolled back: no second automatic rollback
    for i, hours in enumerate((2, 1)):
        window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / f"v2-{i}", now - pd.Timedelta(hours=hours))
        code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 1 and result["action"] == "cool-down", result
    assert aliases(client, model_name)["champion"] == v2
    assert [e["action"] for e in audit_events(client, model_name)].count("rollback") == 1


def test_automatic_rollback_is_compare_and_set_against_the_judged_version(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2, v3), policy = champions(3)
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100
    window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")  # traffic of v2, judged late
    before = audit_events(client, model_name)
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path, "--version", v2)
    assert code == 1 and result["action"] == "rollback-refused", result
    assert f"not v{v2} as expected" in result["action_detail"]
    assert aliases(client, model_name)["champion"] == v3 and audit_events(client, model_name) == before


def test_no_previous_champion_refuses_and_says_so(champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1,), policy = champions(1)
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100
    window, _ = window_of(tracking_uri, model_name, v1, frame, tmp_path / "w")
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 1 and result["action"] == "rollback-refused"
    assert "no previous champion" in result["action_detail"]
    assert aliases(client, model_name)["champion"] == v1


def test_a_version_without_a_profile_gets_one_from_reference(tracking_uri, client, model_name, make_versions, trained,
                                                             tmp_path):
    (v1,) = make_versions(1)
    lifecycle.promote(lifecycle.PromoteRequest(model_name, v1, force=True, skip_card_check=True,
                                               reason="promoted before profiles existed", tracking_uri=tracking_uri))
    policy = write_policy(tmp_path, trained["logistic"].holdout_path)
    window, _ = window_of(tracking_uri, model_name, v1, holdout_frame(trained), tmp_path / "w")
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 2 and "has no reference profile" in result["error"]
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path,
                               "--reference", trained["logistic"].holdout_path)
    assert code == 0 and result["profile_built"] and result["status"] == "healthy", result
    assert tags.PROFILE_RUN_ID in client.get_model_version(model_name, v1).tags


# --- the stable period --------------------------------------------------------------------------------------


def test_the_previous_champion_is_archived_only_once_the_champion_is_stable(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2), policy = champions(2)
    args = ["--tracking-uri", tracking_uri, "--model", model_name, "--keep-last", "0", "--older-than", "0",
            "--policy", policy]
    code, plan = call(archive, [*args, "--dry-run"])
    assert code == 0 and v1 not in plan["would_archive"]
    assert "0 healthy windows of 2" in plan["kept"][v1]
    now = pd.Timestamp.now(tz="UTC")
    window, _ = window_of(tracking_uri, model_name, v2, holdout_frame(trained), tmp_path / "w1", now)
    assert run_monitor(tracking_uri, model_name, policy, window, tmp_path)[0] == 0
    code, result = call(archive, args)
    assert code == 0 and result["archived"] == [] and "1 healthy windows of 2" in result["kept"][v1]
    assert client.get_model_version(model_name, v1).tags.get(tags.ARCHIVED_AT) is None
    window, _ = window_of(tracking_uri, model_name, v2, holdout_frame(trained), tmp_path / "w2",
                          now + pd.Timedelta(seconds=1))
    assert run_monitor(tracking_uri, model_name, policy, window, tmp_path)[0] == 0
    code, result = call(archive, args)
    assert code == 0 and result["archived"] == [v1], result
    assert tags.ARCHIVED_AT in client.get_model_version(model_name, v1).tags
    assert aliases(client, model_name) == {"champion": v2}
    assert "stable" in audit_events(client, model_name)[-1]["reason"]


# --- bad input: one line, exit 2, nothing changed --------------------------------------------------------------


def test_bad_input_is_one_line_exit_2_and_nothing_is_rolled_back(
        champions, tracking_uri, client, model_name, trained, tmp_path, monkeypatch):
    (v1, v2), policy = champions(2)
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100  # every window below would breach if it were read
    window, labels = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(window).head(0).to_parquet(empty)
    missing = tmp_path / "missing.parquet"
    pd.read_parquet(window).drop(columns=[SHIFTED]).to_parquet(missing)
    strangers = tmp_path / "strangers.csv"
    pd.DataFrame({"request_id": ["nobody-1", "nobody-2"], TARGET: [0, 1]}).to_csv(strangers, index=False)
    bad_policy = tmp_path / "bad-policy.yml"
    bad_policy.write_text(Path(policy).read_text().replace("min_rows: 100", "min_rows: lots"))
    before_events, before_runs = audit_events(client, model_name), len(monitoring_runs(client, model_name))
    cases = {
        "no rows": ([], str(empty), "has no rows"),
        "columns": ([], str(missing), SHIFTED),
        "labels": (["--labels", str(strangers)], str(window), "none of the 2 labels"),
        "path": ([], str(tmp_path / "nowhere"), "not found"),
        "policy": (["--policy", str(bad_policy)], str(window), "monitoring.min_rows"),
        "since": (["--since", "yesterday-ish"], str(window), "--since"),
    }
    for case, (extra, source, expected) in cases.items():
        code, result = run_monitor(tracking_uri, model_name, policy, Path(source), tmp_path, *extra)
        assert code == 2, (case, result)
        assert expected in result["error"] and "\n" not in result["error"], (case, result["error"])
    # a policy asking for the Spark engine where pyspark is not installed: the action names its input
    spark_policy = tmp_path / "spark-policy.yml"
    spark_policy.write_text(Path(policy).read_text() + "\nengine: spark\n")
    monkeypatch.setitem(__import__("sys").modules, "pyspark", None)  # not installed, as far as imports go
    code, result = run_monitor(tracking_uri, model_name, str(spark_policy), window, tmp_path)
    assert code == 2 and "pip install 'model-lifecycle[spark]'" in result["error"], result
    assert "extras: spark" in result["error"] and "engine: local" in json.dumps(result), result
    assert aliases(client, model_name)["champion"] == v2
    assert audit_events(client, model_name) == before_events
    assert len(monitoring_runs(client, model_name)) == before_runs


def test_dry_run_records_nothing_and_reports_the_breach(champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2), policy = champions(2)
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100
    window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path, "--dry-run")
    assert code == 1 and result["status"] == "breach" and result["action"] == "rollback-due"
    assert result["monitoring_run_id"] is None and not monitoring_runs(client, model_name)
    assert aliases(client, model_name)["champion"] == v2


def test_an_archived_previous_champion_is_not_restored_by_monitoring(
        champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1, v2), policy = champions(2)
    lifecycle.archive(lifecycle.ArchiveRequest(model_name, v1, reason="retired", tracking_uri=tracking_uri))
    frame = holdout_frame(trained)
    frame[SHIFTED] = frame[SHIFTED] + 100
    window, _ = window_of(tracking_uri, model_name, v2, frame, tmp_path / "w")
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 1 and result["action"] == "rollback-refused"
    assert f"v{v1}, is archived" in result["action_detail"]
    assert aliases(client, model_name)["champion"] == v2
    assert tags.ARCHIVED_AT in client.get_model_version(model_name, v1).tags


def test_shadow_agreement_is_reported_by_slice(champions, tracking_uri, client, model_name, trained, tmp_path):
    (v1,), policy = champions(1)
    holdout = holdout_frame(trained)
    window, labels = window_of(tracking_uri, model_name, v1, holdout, tmp_path / "w")
    frame = pd.read_parquet(window)
    found = pd.read_parquet(labels)
    frame[SLICE] = found[SLICE].to_numpy()  # a window that carries the slice column itself
    disagree = (found[SLICE] == "large").to_numpy()
    frame["shadow_version"] = "9"
    frame["shadow_prediction"] = np.where(disagree, 1 - frame["prediction"], frame["prediction"])
    frame.to_parquet(window)
    policy_text = Path(policy).read_text().replace("  min_slice_rows: 30", "  min_slice_rows: 30\n  shadow: {min_agreement: 0.9}")
    Path(policy).write_text(policy_text)
    code, result = run_monitor(tracking_uri, model_name, policy, window, tmp_path)
    assert code == 0, result
    shadow = result["shadow"]
    assert shadow["rows"] == len(holdout)
    assert shadow["agreement"] == pytest.approx(1 - disagree.mean())
    assert shadow["by_slice"]["size_band.large"] == 0.0 and shadow["by_slice"]["size_band.medium"] == 1.0
    warned = [f for f in result["findings"] if f["check"] == "shadow"]
    assert {f["subject"] for f in warned} == {"size_band.large", "overall"} and result["status"] == "warning"
