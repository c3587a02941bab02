"""The registration relay between a real MLflow server (webhooks on) and a stand-in for GitHub's API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import REPO, call
from fake_github import FakeGitHub

from model_lifecycle.edges import local_server
from model_lifecycle.edges.commands import register
from model_lifecycle.edges.commands import relay
from model_lifecycle.edges.commands import train
from model_lifecycle.adapters.relay_service import sign

SECRET = "relay-test-secret-0123456789"
GITHUB_REPO = "acme/churn"


@pytest.fixture(scope="module")
def github_stand_in():
    fake = FakeGitHub().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def relay_port() -> int:
    return local_server.free_port()


@pytest.fixture(scope="module")
def webhook_server(tmp_path_factory, relay_port):
    """A real MLflow server with webhooks enabled, its webhook registered before any event fires
    (MLflow caches the webhook list for 60 s per process)."""
    from cryptography.fernet import Fernet

    env = {"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
           # MLflow gives up on a dead relay after this many retries (default 3, about 10 s): faster tests
           "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "1"}
    server = local_server.start(tmp_path_factory.mktemp("mlflow-webhooks"), env=env)
    os.environ["RELAY_WEBHOOK_SECRET"] = SECRET
    code, result = call(relay, ["register-webhook", "--tracking-uri", server.uri,
                                "--url", f"http://127.0.0.1:{relay_port}/webhook"])
    assert code == 0, result
    code, again = call(relay, ["register-webhook", "--tracking-uri", server.uri,
                               "--url", f"http://127.0.0.1:{relay_port}/webhook"])
    assert code == 0 and again["action"] == "updated" and again["webhook_id"] == result["webhook_id"]
    out = tmp_path_factory.mktemp("relay-train")
    code, trained = call(train, ["--tracking-uri", server.uri, "--output-dir", str(out)])
    assert code == 0
    server.model_uri = trained["model_uri"]
    yield server
    server.stop()


class RelayProcess:
    def __init__(self, port: int, db: Path, github: FakeGitHub, tracking_uri: str | None, reconcile: float = 1.0):
        self.port, self.db = port, db
        args = [sys.executable, str(REPO / "scripts" / "relay.py"), "serve", "--port", str(port), "--db", str(db),
                "--github-repo", GITHUB_REPO, "--reconcile-seconds", str(reconcile), "--max-body", "65536"]
        if tracking_uri:
            args += ["--tracking-uri", tracking_uri]
        env = {**os.environ, "RELAY_WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "gh-test-token",
               "GITHUB_API_URL": github.url}
        self.log = open(db.with_suffix(".log"), "ab")
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("relay did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.log.close()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()


@pytest.fixture()
def relay_process(tmp_path, relay_port, github_stand_in, webhook_server):
    github_stand_in.dispatch_failures.clear()
    started = []

    def start(reconcile: float = 1.0) -> RelayProcess:
        process = RelayProcess(relay_port, tmp_path / "relay.db", github_stand_in, webhook_server.uri, reconcile)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def post(port: int, body: bytes, *, delivery_id: str | None = None, timestamp: int | None = None,
         signature: str | None = None, content_type: str = "application/json") -> int:
    delivery_id = delivery_id or str(uuid.uuid4())
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    headers = {"Content-Type": content_type, "X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": timestamp,
               "X-MLflow-Signature": signature or sign(SECRET, delivery_id, timestamp, body)}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def envelope(model: str, version: int) -> bytes:
    return json.dumps({"entity": "model_version", "action": "created", "timestamp": "2026-11-27T00:00:00Z",
                       "data": {"name": model, "version": str(version), "source": "models:/m-abc", "run_id": "r1",
                                "tags": {}, "description": None}}).encode()


def dispatched(github: FakeGitHub, model: str) -> list[str]:
    return [d["client_payload"]["version"] for d in github.dispatches
            if d["client_payload"].get("name") == model and d["event_type"] == "model-registered"]


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_registrations_through_mlflow_become_one_dispatch_each(webhook_server, relay_process, github_stand_in, model_name):
    process = relay_process()
    for _ in range(3):
        code, result = call(register, ["--tracking-uri", webhook_server.uri, "--model", model_name,
                                       "--model-uri", webhook_server.model_uri])
        assert code == 0, result
    wait_for(lambda: len(dispatched(github_stand_in, model_name)) == 3)
    time.sleep(1.5)  # a reconciliation pass must not add anything
    assert dispatched(github_stand_in, model_name) == ["1", "2", "3"]
    sent = [d for d in github_stand_in.dispatches if d["client_payload"].get("name") == model_name]
    assert all(d["repo"] == GITHUB_REPO for d in sent)
    payload = sent[0]["client_payload"]
    assert payload["source"] == webhook_server.model_uri
    assert payload["run_id"]  # null in MLflow's payload for models:/m-... sources: resolved by the relay
    auth = [r for r in github_stand_in.requests if r["path"] == f"/repos/{GITHUB_REPO}/dispatches"]
    assert all(r["auth"] for r in auth)
    assert "relay_forwarded" in process.metrics()


def test_bad_deliveries_are_rejected_and_counted(relay_process, github_stand_in):
    process = relay_process()
    port = process.port
    assert post(port, envelope("rej-badsig", 1), signature="v1,AAAA") == 401
    assert post(port, envelope("rej-stale", 1), timestamp=int(time.time()) - 3600) == 401
    replay_id = str(uuid.uuid4())
    assert post(port, envelope("rej-replay", 1), delivery_id=replay_id) == 200
    assert post(port, envelope("rej-replay", 1), delivery_id=replay_id) == 409
    assert post(port, envelope("rej-big", 1) + b" " * 70000) == 413
    assert post(port, envelope("rej-type", 1), content_type="text/plain") == 415
    wait_for(lambda: dispatched(github_stand_in, "rej-replay") == ["1"])
    time.sleep(0.5)
    for model in ("rej-badsig", "rej-stale", "rej-big", "rej-type"):
        assert dispatched(github_stand_in, model) == []
    assert dispatched(github_stand_in, "rej-replay") == ["1"]
    metrics = process.metrics()
    for reason in ("bad_signature", "stale_timestamp", "replay", "too_large", "content_type"):
        assert f'relay_rejected{{reason="{reason}"}} 1' in metrics


def test_github_errors_and_rate_limits_delay_but_lose_nothing(relay_process, github_stand_in):
    github_stand_in.dispatch_failures.extend(["502", "502", "rate-limit", "503", "rate-limit", "502"])
    process = relay_process()
    for version in range(1, 6):
        for model in ("order-a", "order-b"):
            assert post(process.port, envelope(model, version)) == 200
    wait_for(lambda: len(dispatched(github_stand_in, "order-a")) + len(dispatched(github_stand_in, "order-b")) == 10)
    assert dispatched(github_stand_in, "order-a") == ["1", "2", "3", "4", "5"]
    assert dispatched(github_stand_in, "order-b") == ["1", "2", "3", "4", "5"]
    assert github_stand_in.dispatch_failures == []
    assert "relay_retried_total 6" in process.metrics()


def test_relay_killed_mid_burst_loses_nothing(relay_process, github_stand_in):
    github_stand_in.dispatch_failures.extend(["rate-limit"] * 3)  # keep events queued while we kill it
    process = relay_process()
    accepted: list[int] = []

    def send_all() -> None:
        for version in range(1, 81):
            body = envelope("burst", version)
            delivery = str(uuid.uuid4())
            while True:  # like MLflow: retry the same delivery until it is accepted
                try:
                    if post(process.port, body, delivery_id=delivery) in (200, 409):
                        accepted.append(version)
                        break
                except OSError:
                    pass
                time.sleep(0.05)

    sender = threading.Thread(target=send_all)
    sender.start()
    wait_for(lambda: len(accepted) >= 40, timeout=30)
    process.kill()
    time.sleep(0.5)
    relay_process()  # same db, same port
    sender.join(60)
    assert accepted == list(range(1, 81))
    wait_for(lambda: len(set(dispatched(github_stand_in, "burst"))) == 80, timeout=90)
    versions = [int(v) for v in dispatched(github_stand_in, "burst")]
    assert sorted(set(versions)) == list(range(1, 81))
    assert len(versions) - len(set(versions)) <= 1  # at least once: one event may repeat after a kill -9
    assert versions == sorted(versions)


def test_reconciler_sends_what_mlflow_dropped(webhook_server, relay_process, github_stand_in, model_name):
    first = relay_process()
    first.stop()  # the relay has started once (its watermark), then is down
    for _ in range(2):
        code, _ = call(register, ["--tracking-uri", webhook_server.uri, "--model", model_name,
                                  "--model-uri", webhook_server.model_uri])
        assert code == 0
    time.sleep(5)  # MLflow's retry to the dead relay is over: those deliveries are gone
    assert dispatched(github_stand_in, model_name) == []
    process = relay_process()
    wait_for(lambda: dispatched(github_stand_in, model_name) == ["1", "2"], timeout=60)
    assert "relay_reconciled_total 2" in process.metrics()
