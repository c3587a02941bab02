"""Fixtures: a real ``mlflow server`` per test worker, trained models, and ways to run the step scripts.

Nothing of MLflow is mocked. Each pytest-xdist worker starts its own server (sqlite in a temp dir,
free port, own session) and kills its process group at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_lifecycle.edges import local_server  # noqa: E402

# Tests must not wait minutes for a dead server, nor a crashed holder's lock.
os.environ.setdefault("LIFECYCLE_LOCK_TTL_SECONDS", "20")
# A suite run by a pull request's workflow must not register every test version as that pull
# request's candidate (the relay would skip them all): tests that want an event set it themselves.
for _name in ("GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_EVENT_PATH"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = local_server.start(tmp_path_factory.mktemp("mlflow-server"))
    os.environ["MLFLOW_TRACKING_URI"] = srv.uri
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tracking_uri(server) -> str:
    return server.uri


@pytest.fixture()
def client(tracking_uri):
    """A plain MlflowClient, to read back what the toolkit did, as a user would."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@dataclass
class Trained:
    model_uri: str
    run_id: str
    holdout_path: str
    datasets: dict[str, str]
    metrics: dict[str, float]


def call(module: Any, argv: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a step's main() in-process with --json; return (exit code, parsed JSON)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main([*argv, "--json"])
    text = out.getvalue().strip()
    return code, (json.loads(text) if text else {})


@pytest.fixture(scope="session")
def trained(server, tmp_path_factory) -> dict[str, Trained]:
    """Two models logged once per worker: a logistic regression and a gradient-boosting model."""
    from model_lifecycle.edges.commands import train

    out = tmp_path_factory.mktemp("train-out")
    models = {}
    for key, extra in (
        ("logistic", ["--model-type", "logistic", "--C", "0.01"]),
        ("gbm", ["--model-type", "gradient_boosting", "--n-estimators", "30"]),
    ):
        code, payload = call(train, ["--tracking-uri", server.uri, "--output-dir", str(out / key), *extra])
        assert code == 0, payload
        models[key] = Trained(
            payload["model_uri"], payload["run_id"], payload["holdout_path"], payload["datasets"], payload["metrics"]
        )
    return models


@pytest.fixture()
def model_name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def make_versions(tracking_uri, trained, model_name):
    """Register n versions of a fresh model (alternating the two trained models)."""
    from model_lifecycle.edges.commands import register

    def make(n: int, name: str | None = None) -> list[str]:
        versions = []
        for i in range(n):
            source = trained["logistic" if i % 2 == 0 else "gbm"].model_uri
            code, payload = call(
                register, ["--tracking-uri", tracking_uri, "--model", name or model_name, "--model-uri", source]
            )
            assert code == 0, payload
            versions.append(payload["version"])
        return versions

    return make


def run_script(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
    """Run ``python scripts/<script>.py`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{script}.py"), *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO,
    )


def audit_events(client, name: str) -> list[dict[str, Any]]:
    """Read the audit record with a plain client: the experiment, the model's run, its tags."""
    experiment = client.get_experiment_by_name("model-lifecycle-audit")
    if experiment is None:
        return []
    events = []
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        if run.data.tags.get("lifecycle.audit_model") == name:
            events += [(k, json.loads(v)) for k, v in run.data.tags.items() if k.startswith("audit.")]
    return [e for _, e in sorted(events, key=lambda kv: kv[0])]


def aliases(client, name: str) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}


CURRENT_CHAMPION = "current @champion"


def record_passing_verdict(client, name: str, version: str, baseline: str | None = CURRENT_CHAMPION) -> str:
    """Leave ``version`` as a passing ``compare_baseline`` leaves it, for set-ups that are not about the
    gate (test_gate.py runs the real one): a run in the evaluation experiment holding ``verdict.json``,
    and the four verdict tags compare writes (digest, passed, run id, baseline). ``baseline`` is the
    champion it was compared with, None for none; by default the current @champion, as compare reads
    it. Staging and production refuse a version without such a verdict. Returns the digest."""
    from model_lifecycle import tags
    from model_lifecycle.adapters import registry
    from model_lifecycle.api.gate import DEFAULT_EXPERIMENT
    from model_lifecycle.core import verdict as verdicts

    version = str(version)
    if baseline == CURRENT_CHAMPION:
        baseline = aliases(client, name).get(tags.CHAMPION_ALIAS)
    baseline = None if baseline is None or baseline == version else str(baseline)
    verdict = {"schema": 1, "model": name, "passed": True, "failures": [],
               "candidate": {"version": version, "uri": f"models:/{name}/{version}"},
               "baseline": {"version": baseline, "uri": f"models:/{name}/{baseline}"} if baseline else None,
               "note": "recorded by a test set-up that is not about the gate"}
    digest = verdicts.digest(verdict)
    run = client.create_run(registry.experiment_id(client, DEFAULT_EXPERIMENT), run_name=f"verdict {name} v{version}",
                            tags={tags.RUN_MODEL: name, tags.RUN_VERSION: version})
    client.log_text(run.info.run_id, json.dumps(verdict, indent=2, sort_keys=True), "verdict.json")
    client.set_terminated(run.info.run_id)
    for key, value in ((tags.VERDICT_SHA256, digest), (tags.VERDICT_PASSED, "true"),
                       (tags.VERDICT_RUN_ID, run.info.run_id), (tags.VERDICT_BASELINE, baseline or "none")):
        client.set_model_version_tag(name, version, key, value)
    return digest


# --- PostgreSQL: a throw-away cluster and an mlflow server with 4 workers on it (tests/postgres.py) ---------
#
# Started lazily, once per test worker, by the first test that asks for it; a run that selects no
# PostgreSQL test starts nothing. Where PostgreSQL is not installed those tests fail naming what to
# install (never a skip). A test runs on both backends with ``@both_backends`` and a module-level
# override of the fixtures it uses, for example:
#
#     @pytest.fixture()
#     def tracking_uri(tracking_uri, backend_uri):  # the backend's server instead of the sqlite one
#         return backend_uri
#
#     @pytest.fixture()
#     def trained(trained, backend, request):  # models logged on that server
#         return request.getfixturevalue("pg_trained") if backend == "postgresql" else trained
#
# (A fixture of another name must not request ``trained`` or ``tracking_uri`` by name: inside such a
# module that would be the override again.)

BACKENDS = ("sqlite", "postgresql")
both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster():
    import postgres

    try:
        cluster = postgres.start_cluster()
    except postgres.PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_server(pg_cluster, tmp_path_factory):
    """``mlflow server --workers 4`` on database ``mlflow`` of this worker's cluster."""
    import postgres

    srv = postgres.start_mlflow(pg_cluster, tmp_path_factory.mktemp("mlflow-pg-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_tracking_uri(pg_server) -> str:
    return pg_server.uri


@pytest.fixture(scope="session")
def pg_trained(pg_server, tmp_path_factory) -> dict[str, Trained]:
    """The two models of ``trained``, logged on the PostgreSQL server."""
    from model_lifecycle.edges.commands import train

    out = tmp_path_factory.mktemp("train-out-pg")
    models = {}
    for key, extra in (
        ("logistic", ["--model-type", "logistic", "--C", "0.01"]),
        ("gbm", ["--model-type", "gradient_boosting", "--n-estimators", "30"]),
    ):
        code, payload = call(train, ["--tracking-uri", pg_server.uri, "--output-dir", str(out / key), *extra])
        assert code == 0, payload
        models[key] = Trained(
            payload["model_uri"], payload["run_id"], payload["holdout_path"], payload["datasets"], payload["metrics"]
        )
    return models


@pytest.fixture()
def backend(request) -> str:
    """``sqlite`` unless the test is parametrised with ``@both_backends`` (or ``indirect`` params)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture()
def backend_uri(backend, request, monkeypatch):
    """The tracking URI of the test's backend. On PostgreSQL, $MLFLOW_TRACKING_URI and MLflow's
    default tracking and registry URIs point at that server for the test (``models:/`` loads)."""
    if backend == "sqlite":
        yield request.getfixturevalue("server").uri
        return
    import mlflow

    uri = request.getfixturevalue("pg_tracking_uri")
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])

