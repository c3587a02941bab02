"""Hold-outs larger than memory: the gate reads them in batches and gives what the whole table gives.

A model logged to the real MLflow server, a Parquet (and CSV) hold-out with slice columns and
missing values in a feature the model does not read; the batched evaluation is compared with itself
at other batch sizes and with pandas + scikit-learn on the whole table. Memory and speed are
measured in bench/bench_scale.py, not here.
"""

from __future__ import annotations

import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import call
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from model_lifecycle.core import evaluation, lineage
from model_lifecycle.core import policy as policies
from model_lifecycle.edges import common
from model_lifecycle.edges.commands import evaluate as evaluate_cmd

FEATURES = [f"x{i}" for i in range(6)]


@pytest.fixture(scope="module")
def world(tmp_path_factory, server):
    rng = np.random.default_rng(3)
    n = 24_000
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame["y"] = (frame.x0 - 0.5 * frame.x1 + 0.4 * rng.normal(size=n) > 0).astype("int64")
    frame["region"] = rng.choice(["north", "south", "east"], n)
    frame["segment"] = rng.choice(["a", "b"], n)
    frame["note"] = np.where(rng.random(n) < 0.1, None, "ok")  # missing values the model never reads
    folder = tmp_path_factory.mktemp("scale")
    frame.to_parquet(folder / "holdout.parquet")
    frame.to_csv(folder / "holdout.csv", index=False)
    model = LogisticRegression().fit(frame[FEATURES].head(5000), frame.y.head(5000))
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("scale-tests")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=mlflow.models.infer_signature(
            frame[FEATURES].head(5), model.predict(frame[FEATURES].head(5))))
    policy_path = folder / "policy.yml"
    policy_path.write_text(f"""\
version: 1
task: binary
holdout: {{path: {folder / 'holdout.parquet'}, target: y}}
slices: {{columns: [region, segment], intersections: [[region, segment]], min_size: 30}}
gates: [{{metric: roc_auc, floor: 0.5}}]
""")
    return {"frame": frame, "folder": folder, "uri": info.model_uri, "model": model, "policy": policy_path}


def _results(streamed, uri):
    from model_lifecycle.core.verdict import serialise_results

    return serialise_results(streamed.evaluated[uri].results)


@pytest.mark.parametrize("holdout", ["holdout.parquet", "holdout.csv"])
def test_batches_give_the_results_of_the_whole_table(world, holdout):
    policy = policies.load(world["policy"])
    path = str(world["folder"] / holdout)
    whole = evaluation.evaluate_holdout(policy, [world["uri"]], path, batch_rows=10**9)
    for batch_rows in (1000, 7_777):
        batched = evaluation.evaluate_holdout(policy, [world["uri"]], path, batch_rows=batch_rows)
        assert _results(batched, world["uri"]) == _results(whole, world["uri"])  # exact, every slice and interval
        assert batched.info == whole.info
    # the same numbers as pandas + scikit-learn on the whole table
    frame = world["frame"]
    proba = world["model"].predict_proba(frame[FEATURES])[:, 1]
    overall = _results(whole, world["uri"])["overall"]["metrics"]
    assert overall["roc_auc"]["value"] == pytest.approx(roc_auc_score(frame.y, proba), abs=1e-12)
    assert overall["accuracy"]["value"] == pytest.approx(accuracy_score(frame.y, proba > 0.5), abs=1e-12)
    assert overall["log_loss"]["value"] == pytest.approx(log_loss(frame.y, proba), rel=1e-9)
    north_a = (frame.region == "north") & (frame.segment == "a")
    sliced = _results(whole, world["uri"])["region.north__segment.a"]
    assert sliced["n"] == int(north_a.sum())
    assert sliced["metrics"]["roc_auc"]["value"] == pytest.approx(roc_auc_score(frame.y[north_a], proba[north_a]))


def test_the_holdout_digest_is_the_whole_tables(world):
    policy = policies.load(world["policy"])
    streamed = evaluation.evaluate_holdout(policy, [world["uri"]], batch_rows=1000)
    assert streamed.info["sha256"] == lineage.dataframe_sha256(pd.read_parquet(world["folder"] / "holdout.parquet"))
    assert streamed.info["rows"] == len(world["frame"])
    assert len(streamed.sample) == len(world["frame"])  # below the sample size every row is kept


def test_progress_is_a_line_every_few_seconds_in_a_log_and_nothing_with_json(world, monkeypatch, tracking_uri,
                                                                             capsys):
    log = io.StringIO()
    reporter = common.Progress(stream=log)
    monkeypatch.setattr(common, "PROGRESS_LINE_SECONDS", 0.0)
    policy = policies.load(world["policy"])
    evaluation.evaluate_holdout(policy, [world["uri"]], batch_rows=5000, progress=reporter)
    lines = log.getvalue().splitlines()
    assert lines and lines[-1] == f"hold-out rows evaluated: {len(world['frame']):,} of {len(world['frame']):,} (100%)"
    code, payload = call(evaluate_cmd, ["--tracking-uri", tracking_uri, "--model-uri", world["uri"], "--policy",
                                        str(world["policy"]), "--output", str(world["folder"] / "e.json"), "--no-log"])
    assert code == 0 and payload["rows"] == len(world["frame"])
    assert "hold-out rows evaluated" not in capsys.readouterr().err  # --json: nothing extra
    json.dumps(payload)
