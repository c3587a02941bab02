"""The staging deployment check against real served versions: a healthy one passes, a planted
serving skew and a planted slow model are caught, and the result is tagged on the version."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import REPO, call

from model_lifecycle.edges.commands import stage_check
from planted_models import Slow, SkewedInServing

PLANTED = str(REPO / "tests" / "planted_models.py")


@pytest.fixture()
def policy(tmp_path, trained):
    def write(**staging) -> str:
        path = tmp_path / "policy.yml"
        path.write_text(yaml.safe_dump({
            "version": 1, "task": "binary", "holdout": {"path": trained["logistic"].holdout_path, "target": "target"},
            "gates": [{"metric": "roc_auc", "floor": 0.5}],
            "staging": {"duration_seconds": 1.5, "concurrency": 2, "parity_rows": 60, **staging},
        }))
        return str(path)

    return write


def register_pyfunc(tracking_uri: str, name: str, model, holdout_path: str) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    example = pd.read_csv(holdout_path).drop(columns=["target", "size_band"]).head(3)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=model, input_example=example, code_paths=[PLANTED])
    return str(mlflow.register_model(info.model_uri, name).version)


def test_a_healthy_version_passes_and_the_result_is_tagged(tracking_uri, make_versions, model_name, policy, client,
                                                            tmp_path):
    (v1,) = make_versions(1)
    code, result = call(stage_check, ["--tracking-uri", tracking_uri, "--model", model_name, "--version", v1,
                                      "--policy", policy(p99_ms=5000), "--output", str(tmp_path / "s.json")])
    assert code == 0, result
    names = [c["name"] for c in result["checks"]]
    assert names == ["parity", "load", "malformed requests"]
    assert result["checks"][1]["requests"] > 0 and result["checks"][1]["error_rate"] == 0
    assert set(result["checks"][2]["answers"].values()) == {400}
    tags = client.get_model_version(model_name, v1).tags
    assert tags["lifecycle.staging.passed"] == "true" and tags["lifecycle.staging.sha256"] == result["sha256"]


def test_a_planted_serving_skew_fails_parity(tracking_uri, trained, model_name, policy, client, tmp_path):
    version = register_pyfunc(tracking_uri, model_name, SkewedInServing(), trained["logistic"].holdout_path)
    code, result = call(stage_check, ["--tracking-uri", tracking_uri, "--model", model_name, "--version", version,
                                      "--policy", policy(), "--output", str(tmp_path / "s.json")])
    assert code == 1
    parity = result["checks"][0]
    assert not parity["passed"] and "serving skew" in parity["detail"] and parity["mismatches"] == 60
    assert client.get_model_version(model_name, version).tags["lifecycle.staging.passed"] == "false"


def test_a_planted_slow_model_misses_the_latency_budget(tracking_uri, trained, model_name, policy, tmp_path):
    version = register_pyfunc(tracking_uri, model_name, Slow(), trained["logistic"].holdout_path)
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "stage_check.py"), "--tracking-uri", tracking_uri,
                             "--model", model_name, "--version", version, "--policy", policy(p95_ms=50),
                             "--output", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "load: " in result.stderr and "over budget: p95" in result.stderr
