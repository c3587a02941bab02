"""The README's demo command, twice, on its own server and store: both runs succeed."""

from __future__ import annotations

import json

from conftest import run_script

from model_lifecycle import tags


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
        # serve followed @champion through the promotion of the second version and the rollback
        traffic = payload["traffic"]
        assert traffic["failed"] == 0 and traffic["requests"] > 0
        assert traffic["versions_served"][-1] == payload["versions"][0]
        assert payload["versions"][1] in traffic["versions_served"]
        # the drifted window was a breach, and monitoring rolled the second version back
        assert payload["monitoring"] == {"status": "breach", "action": "rollback",
                                         "rolled_back_to": payload["versions"][0]}
        assert_no_mlflow_chatter(result.stdout + result.stderr)
    # read the demo's store back directly: the history of both runs is there
    store = f"sqlite:///{demo_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    model = client.get_registered_model("demo-classifier")
    assert {a: str(v) for a, v in model.aliases.items()}["champion"] == "3"
    assert not client.search_registered_models("name = 'demo-classifier.lifecycle-lock'")
    rollback = [e for e in _audit(client) if e["action"] == "rollback"][-1]
    assert "monitoring breach" in rollback["reason"] and "mean_texture" in rollback["reason"]
    assert set(rollback["evidence"]) == {"monitoring_run", "findings"}
    window_run = client.get_run(rollback["evidence"]["monitoring_run"])
    assert window_run.data.tags[tags.RUN_WINDOW_STATUS] == "breach"


def _audit(client):
    from model_lifecycle.core import audit

    return audit.read(client, "demo-classifier")


def assert_no_mlflow_chatter(output: str) -> None:
    """What MLflow says on its own is not a step's output: a user reads it as a problem."""
    for chatter in ("View run", "View experiment", "integer column", "INFO mlflow", "FutureWarning",
                    "Downloading artifacts", "Successfully registered model", "Created version '",
                    "already exists. Creating a new version"):
        lines = [line for line in output.splitlines() if chatter in line]
        assert not lines, f"{chatter!r} in the output: {lines[:3]}"


def test_mlflow_chatter_is_left_out_unless_verbose(capsys):
    import sys
    import warnings

    from model_lifecycle.edges import common

    def chatty() -> None:
        sys.stdout.write("🏃 View run demo at: http://127.0.0.1:5000/#/experiments/1/runs/abc\n")
        sys.stdout.write("🧪 View experiment at: http://127.0.0.1:5000/#/experiments/1\n")
        sys.stderr.write("2026/11/27 10:00:00 INFO mlflow.tracking.fluent: Experiment with name 'x' does not exist.\n")
        print("Successfully registered model 'demo'.", file=sys.stderr)
        sys.stderr.write("\rDownloading artifacts:   0%|          | 0/7 [00:00<?, ?it/s]")
        sys.stderr.write("\rDownloading artifacts: 100%|##########| 7/7 [00:00<00:00, 15.86it/s]")
        sys.stderr.write("\n")
        warnings.warn("stages are deprecated", FutureWarning, stacklevel=1)
        print("✔ registered demo version 1")
        print()
        sys.stderr.write("2026/11/27 10:00:00 WARNING mlflow.models: something the user must know\n")

    for verbose, shown in ((False, False), (True, True)):
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with common.quiet_mlflow(verbose):
                chatty()
        out, err = capsys.readouterr()
        assert out.startswith("🏃 View run") is shown and ("INFO mlflow" in err) is shown
        assert ("Downloading artifacts" in err) is shown and ("Successfully registered" in err) is shown
        assert any(w.category is FutureWarning for w in caught) is shown
        if not shown:
            assert err == "2026/11/27 10:00:00 WARNING mlflow.models: something the user must know\n"
        assert "✔ registered demo version 1\n\n" in out  # the toolkit's own lines, blank ones too
        assert "WARNING mlflow.models: something the user must know" in err
    code = common.run(chatty, json_output=False)
    out, err = capsys.readouterr()
    assert code == 0 and "View run" not in out and out.startswith("✔ registered demo version 1")


def test_every_step_takes_verbose():
    from model_lifecycle.edges.commands import compare_baseline, model_card, train

    assert compare_baseline.build_parser().parse_args(["--model", "m", "--candidate", "1", "--verbose"]).verbose
    assert train.build_parser().parse_args(["--verbose"]).verbose
    assert model_card.build_parser().parse_args(["check", "--model", "m", "--version", "1", "--verbose"]).verbose
