"""The README's demo command, twice, on its own server and store: both runs succeed."""

from __future__ import annotations

import json

from conftest import run_script


def test_demo_runs_twice_on_its_own_server(tmp_path):
    from mlflow import MlflowClient

    demo_dir = tmp_path / "demo"
    for run in (1, 2):
        result = run_script("demo", "--demo-dir", str(demo_dir), "--json", env={"MLFLOW_TRACKING_URI": ""}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        payload = json.loads(result.stdout)
        assert payload["champion"] == payload["versions"][0]
        assert payload["versions"] == [str(2 * run - 1), str(2 * run)]
        assert "Open the MLflow UI on this store" in result.stderr
    # read the demo's store back directly: the history of both runs is there
    store = f"sqlite:///{demo_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    model = client.get_registered_model("demo-classifier")
    assert {a: str(v) for a, v in model.aliases.items()}["champion"] == "3"
    assert not client.search_registered_models("name = 'demo-classifier.lifecycle-lock'")
