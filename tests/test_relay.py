"""The registration relay between a real MLflow server (webhooks on) and a stand-in for GitHub's API."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import REPO, both_backends, call, run_script
from fake_github import FakeGitHub

from model_lifecycle.adapters import registry
from model_lifecycle.adapters.relay_service import sign
from model_lifecycle.edges import local_server
from model_lifecycle.edges.commands import register
from model_lifecycle.edges.commands import relay
from model_lifecycle.edges.commands import train

SECRET = "relay-test-secret-0123456789abcdef"  # 34 bytes: the relay refuses fewer than 32
GITHUB_REPO = "acme/churn"
MLFLOW = object()  # relay_process(tracking_uri=MLFLOW): the module's real MLflow server


@pytest.fixture(scope="module")
def github_stand_in():
    fake = FakeGitHub().start()
    yield fake
    fake.stop()


def webhook_env() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            # MLflow gives up on a dead relay after this many retries (default 3, about 10 s): faster tests
            "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "1"}


def with_webhook(server, relay_port: int, tmp_path_factory):
    """Register the relay's webhook on a fresh server before any event fires (MLflow caches the
    webhook list for 60 s per process), and log a model there to register versions of."""
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
    server.relay_port = relay_port
    return server


@pytest.fixture(scope="module")
def sqlite_webhook_server(tmp_path_factory):
    """A real MLflow server with webhooks enabled, its webhook registered before any event fires."""
    server = local_server.start(tmp_path_factory.mktemp("mlflow-webhooks"), env=webhook_env())
    yield with_webhook(server, local_server.free_port(), tmp_path_factory)
    server.stop()


@pytest.fixture(scope="module")
def pg_webhook_server(tmp_path_factory, pg_cluster):
    """The same on PostgreSQL (4 server workers, its own database and relay port)."""
    import postgres

    server = postgres.start_mlflow(pg_cluster, tmp_path_factory.mktemp("mlflow-webhooks-pg"),
                                   database="mlflow_webhooks", env=webhook_env())
    yield with_webhook(server, local_server.free_port(), tmp_path_factory)
    server.stop()


# Tests marked @both_backends run against both servers; the others against the sqlite one.
@pytest.fixture()
def webhook_server(backend, request):
    return request.getfixturevalue("pg_webhook_server" if backend == "postgresql" else "sqlite_webhook_server")


@pytest.fixture()
def relay_port(webhook_server) -> int:
    """The port the server's webhook delivers to: relays reading that server listen there."""
    return webhook_server.relay_port


class RelayProcess:
    def __init__(self, port: int, db: Path, github: FakeGitHub, tracking_uri: str | None, reconcile: float = 1.0,
                 extra: tuple[str, ...] = (), max_files: int | None = None):
        self.port, self.db = port, db
        args = [sys.executable, str(REPO / "scripts" / "relay.py"), "serve", "--port", str(port), "--db", str(db),
                "--github-repo", GITHUB_REPO, "--reconcile-seconds", str(reconcile), "--max-body", "65536", *extra]
        if tracking_uri:
            args += ["--tracking-uri", tracking_uri]
        env = {**os.environ, "RELAY_WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "gh-test-token",
               "GITHUB_API_URL": github.url}
        env.pop("MLFLOW_TRACKING_URI", None)  # (set by MLflow in this process) no tracking URI: no MLflow
        self.log_path = db.with_suffix(".log")
        self.log = open(self.log_path, "ab")

        def limits() -> None:  # a usual umask (files must be private anyway); optionally few descriptors
            os.umask(0o022)
            if max_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limits)
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

    def stop(self) -> int:
        """SIGTERM, and the exit code: 0 for a clean stop (the relay's own watchdog exits 1, with
        every thread's stack in the log, when stopping takes longer than its STOP_SECONDS)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.log.close()
        return self.process.returncode

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()

    def metric(self, name: str) -> int:
        found = re.search(rf"^relay_{re.escape(name)} (\d+)$", self.metrics(), flags=re.M)
        return int(found.group(1)) if found else 0

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture()
def relay_process(tmp_path, relay_port, github_stand_in, webhook_server):
    github_stand_in.dispatch_failures.clear()
    started = []

    def start(reconcile: float = 1.0, tracking_uri: object = MLFLOW, extra: tuple[str, ...] = (),
              max_files: int | None = None) -> RelayProcess:
        uri = webhook_server.uri if tracking_uri is MLFLOW else tracking_uri
        # only a relay on the webhook's port gets MLflow's deliveries (late ones of earlier tests too)
        port = relay_port if tracking_uri is MLFLOW else (started[-1].port if started else local_server.free_port())
        process = RelayProcess(port, tmp_path / "relay.db", github_stand_in, uri, reconcile, extra, max_files)
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


def envelope(model: str, version: int, run_id: str | None = "r1", source: str | None = "models:/m-abc") -> bytes:
    """A model_version.created delivery; MLflow's own have run_id null for models:/m-... sources."""
    return json.dumps({"entity": "model_version", "action": "created", "timestamp": "2026-11-27T00:00:00Z",
                       "data": {"name": model, "version": str(version), "source": source, "run_id": run_id,
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


@both_backends
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


@both_backends
def test_reconciler_sends_what_mlflow_dropped(webhook_server, relay_process, github_stand_in, model_name):
    first = relay_process()
    assert first.stop() == 0, first.log_path.read_text()  # the relay has started once (its watermark), then is down
    for _ in range(2):
        code, _ = call(register, ["--tracking-uri", webhook_server.uri, "--model", model_name,
                                  "--model-uri", webhook_server.model_uri])
        assert code == 0
    time.sleep(5)  # MLflow's retry to the dead relay is over: those deliveries are gone
    assert dispatched(github_stand_in, model_name) == []
    process = relay_process()
    wait_for(lambda: dispatched(github_stand_in, model_name) == ["1", "2"], timeout=60)
    assert "relay_reconciled_total 2" in process.metrics()


def test_a_pull_requests_candidate_is_never_announced(webhook_server, relay_process, github_stand_in, model_name):
    """A version registered as a pull request's candidate (lifecycle.pull_request) is neither
    forwarded from MLflow's delivery nor queued by the reconciler: the pull request's merge
    releases it (release_candidate). Registrations around it are forwarded as usual."""
    base = ["--tracking-uri", webhook_server.uri, "--model", model_name, "--model-uri", webhook_server.model_uri]
    process = relay_process()
    for extra in ([], ["--pull-request", "12"], []):
        code, result = call(register, [*base, *extra])
        assert code == 0, result
    wait_for(lambda: dispatched(github_stand_in, model_name) == ["1", "3"])
    process.stop()  # down while another candidate and a release are registered: only the reconciler sees them
    for extra in (["--pull-request", "13"], []):
        assert call(register, [*base, *extra])[0] == 0
    process = relay_process()
    wait_for(lambda: dispatched(github_stand_in, model_name) == ["1", "3", "5"])
    time.sleep(2.5)  # more reconciliation passes: still no candidate
    assert dispatched(github_stand_in, model_name) == ["1", "3", "5"]
    # this process met v2 and v4 (its reconciler looks back to the first start), each counted once
    assert "relay_candidates_skipped_total 2" in process.metrics()


# --- events that cannot be delivered (finding 17) ---------------------------------------------------
def failed_ids(db: Path, model: str) -> list[int]:
    code, result = call(relay, ["failed", "--db", str(db)])
    assert code == 0, result
    return [e["id"] for e in result["events"] if e["model"] == model]


def test_a_version_missing_from_mlflow_fails_is_counted_and_its_model_moves_on(
        webhook_server, relay_process, github_stand_in, model_name):
    process = relay_process()
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"  # never created: the run_id look-up answers "not found"
    assert post(process.port, envelope(ghost, 1, run_id=None)) == 200
    assert post(process.port, envelope(ghost, 2)) == 200  # carries its run_id: no look-up needed
    wait_for(lambda: dispatched(github_stand_in, ghost) == ["2"], timeout=20)
    assert 'relay_failed_total{reason="mlflow_not_found"} 1' in process.metrics()
    assert "relay_failed 1" in process.metrics()
    wait_for(lambda: "FAILED [mlflow_not_found]" in process.output(), timeout=5)
    code, listed = call(relay, ["failed", "--db", str(process.db)])
    assert code == 0
    [event] = [e for e in listed["events"] if e["model"] == ghost]
    assert event["version"] == "1" and event["event_type"] == "model-registered"
    assert event["error"].startswith("mlflow_not_found:") and event["attempts"] == 1

    # a delivery that arrived before its version existed (or a restored one): requeue sends it
    assert post(process.port, envelope(model_name, 1, run_id=None)) == 200
    wait_for(lambda: len(failed_ids(process.db, model_name)) == 1, timeout=20)
    [event_id] = failed_ids(process.db, model_name)
    code, result = call(register, ["--tracking-uri", webhook_server.uri, "--model", model_name,
                                   "--model-uri", webhook_server.model_uri])
    assert code == 0, result
    code, requeued = call(relay, ["requeue", "--db", str(process.db), "--id", str(event_id)])
    assert code == 0 and requeued["requeued"] == [event_id]
    wait_for(lambda: dispatched(github_stand_in, model_name) == ["1"], timeout=20)
    sent = [d for d in github_stand_in.dispatches if d["client_payload"].get("name") == model_name]
    from mlflow import MlflowClient

    registered = MlflowClient(tracking_uri=webhook_server.uri).get_model_version(model_name, "1")
    assert sent[0]["client_payload"]["run_id"] == registered.run_id and registered.run_id  # looked up this time
    assert failed_ids(process.db, model_name) == []
    code, _ = call(relay, ["requeue", "--db", str(process.db), "--id", str(event_id)])  # not failed now
    assert code == 2
    code, _ = call(relay, ["failed", "--db", str(process.db.with_name("missing.db"))])
    assert code == 2


# --- GitHub's answers (finding 23) and the attempt cap (finding 17) ------------------------------------
def test_github_422_is_retried_403_404_and_exhausted_attempts_fail_loudly_and_requeue_sends_them(
        relay_process, github_stand_in):
    process = relay_process(tracking_uri=None, extra=("--max-attempts", "3"))
    github_stand_in.dispatch_failures.append("422")  # "the endpoint has been spammed": retry later
    assert post(process.port, envelope("gh-spammed", 1)) == 200
    wait_for(lambda: dispatched(github_stand_in, "gh-spammed") == ["1"], timeout=20)
    assert process.metric("retried_total") == 1
    for failure, model, reason in (("403", "gh-forbidden", "github_403"), ("404", "gh-missing", "github_404")):
        github_stand_in.dispatch_failures.append(failure)
        assert post(process.port, envelope(model, 1)) == 200
        wait_for(lambda: process.metric(f'failed_total{{reason="{reason}"}}') == 1, timeout=20)
        assert dispatched(github_stand_in, model) == []
        wait_for(lambda: f"FAILED [{reason}]" in process.output(), timeout=5)
        assert "cannot send repository_dispatch" in process.output()
    github_stand_in.dispatch_failures.extend(["502"] * 3)
    assert post(process.port, envelope("gh-flaky", 1)) == 200
    wait_for(lambda: process.metric('failed_total{reason="max_attempts"}') == 1, timeout=20)
    assert process.metric("retried_total") == 3
    code, listed = call(relay, ["failed", "--db", str(process.db)])
    assert code == 0 and [e["model"] for e in listed["events"]] == ["gh-forbidden", "gh-missing", "gh-flaky"]
    assert "gave up after 3 attempts" in listed["events"][2]["error"]
    code, requeued = call(relay, ["requeue", "--db", str(process.db), "--all"])
    assert code == 0 and len(requeued["requeued"]) == 3
    for model in ("gh-forbidden", "gh-missing", "gh-flaky"):
        wait_for(lambda: dispatched(github_stand_in, model) == ["1"], timeout=20)
    code, listed = call(relay, ["failed", "--db", str(process.db)])
    assert listed["events"] == []


# --- Content-Length (finding 18) ----------------------------------------------------------------
def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 5) -> str:
    """Send a hand-made request; return the status line of the answer (the relay must answer
    without waiting for more)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def test_content_length_is_checked_before_any_body_is_read(relay_process):
    process = relay_process(tracking_uri=None)
    head = "POST /webhook HTTP/1.1\nHost: relay\nContent-Type: application/json\n"
    for length in ("-1", "abc", "1_0", "+5", " 0x10"):  # -1 used to read until the client closed
        assert raw_request(process.port, head + f"Content-Length: {length}\n").endswith(" 400 Bad Request"), length
    assert raw_request(process.port, head + "Content-Length: 5\nContent-Length: 7\n").endswith(" 400 Bad Request")
    assert raw_request(process.port, head + "Transfer-Encoding: chunked\n", b"5\r\nhello\r\n0\r\n\r\n").endswith(" 411 Length Required")
    assert raw_request(process.port, head).endswith(" 411 Length Required")
    assert raw_request(process.port, head + "Content-Length: 100000000\n").endswith(" 413 Request Entity Too Large")
    metrics = process.metrics()
    assert 'relay_rejected{reason="bad_length"} 6' in metrics
    assert 'relay_rejected{reason="length_required"} 2' in metrics
    assert post(process.port, envelope("length-ok", 1)) == 200  # and it still serves
    assert "Traceback" not in process.output()


# --- idle connections (finding 19) ---------------------------------------------------------------
def test_idle_connections_cannot_starve_deliveries(relay_process, github_stand_in):
    # 160 file descriptors: without a connection limit, 250 idle sockets leave none to accept a delivery
    process = relay_process(tracking_uri=None, extra=("--request-timeout", "2"), max_files=160)
    idle = []
    try:
        for _ in range(250):  # loopback only; connect without waiting for the relay to accept
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", process.port))
            idle.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        assert post(process.port, envelope("starved", 1)) == 200
        assert time.monotonic() - started < 5
        wait_for(lambda: dispatched(github_stand_in, "starved") == ["1"], timeout=10)
        # a connection that sends nothing is closed after the request timeout
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as lazy:
            lazy.sendall(b"POST /webhook HTTP/1.1\r\n")  # and never the rest
            started = time.monotonic()
            assert lazy.recv(100) == b""
            assert time.monotonic() - started < 5
        assert process.metric("idle_connections_closed_total") > 0
    finally:
        for sock in idle:
            sock.close()


# --- a hung MLflow (finding 20) -------------------------------------------------------------------
class StubMlflow:
    """Answers the registry calls the relay makes; the look-up of a model in ``hung`` hangs until released."""

    def __init__(self) -> None:
        self.hung: set[str] = set()
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.endswith("/model-versions/get"):
                    if query["name"] in stub.hung:
                        stub.release.wait(60)
                    answer = {"model_version": {"name": query["name"], "version": query["version"],
                                                "run_id": f"run-of-{query['name']}", "source": "models:/m-stub",
                                                "creation_timestamp": 1}}
                elif url.path.endswith("/registered-models/search"):
                    answer = {"registered_models": []}
                else:
                    answer = {}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_hung_mlflow_look_up_holds_only_its_own_model(relay_process, github_stand_in):
    stub = StubMlflow()
    stub.hung.add("slow-model")
    try:
        process = relay_process(tracking_uri=stub.uri, extra=("--lookup-timeout", "2"))
        assert post(process.port, envelope("warm-model", 1, run_id=None)) == 200  # MLflow's client is imported
        wait_for(lambda: dispatched(github_stand_in, "warm-model") == ["1"], timeout=20)
        assert post(process.port, envelope("slow-model", 1, run_id=None)) == 200
        time.sleep(0.3)  # its look-up is under way
        assert post(process.port, envelope("quick-model", 1, run_id=None)) == 200
        started = time.monotonic()
        wait_for(lambda: dispatched(github_stand_in, "quick-model") == ["1"], timeout=10)
        assert time.monotonic() - started < 2  # not behind the other model's look-up
        wait_for(lambda: process.metric("retried_total") >= 1, timeout=10)  # the look-up's deadline
        assert "look-up timed out after 2 s" in process.output()
        assert dispatched(github_stand_in, "slow-model") == []
        # stopped while its look-up still hangs on MLflow: the relay exits at once, cleanly
        started = time.monotonic()
        assert process.stop() == 0, process.log_path.read_text()
        assert time.monotonic() - started < 3
        stub.hung.clear()
        stub.release.set()
        process = relay_process(tracking_uri=stub.uri, extra=("--lookup-timeout", "2"))  # same queue
        wait_for(lambda: dispatched(github_stand_in, "slow-model") == ["1"], timeout=20)
        sent = [d["client_payload"] for d in github_stand_in.dispatches if d["client_payload"]["name"] == "slow-model"]
        assert sent[0]["run_id"] == "run-of-slow-model"
    finally:
        stub.stop()


# --- names with quotes and backslashes (finding 21) ---------------------------------------------------
@both_backends
def test_names_with_quotes_and_backslashes_are_found_by_filters_and_the_reconciler(
        webhook_server, relay_process, github_stand_in):
    from mlflow import MlflowClient

    tag = uuid.uuid4().hex[:6]
    names = [f"it's-{tag}", f'say "hi"-{tag}', f"back\\slash-{tag}", f"trail-{tag}\\", f"quote\\'-{tag}",
             f"both'\"\\-{tag}"]
    decoy = f"bothx\"x-{tag}"  # what the LIKE pattern of the last name also matches
    client = MlflowClient(tracking_uri=webhook_server.uri, registry_uri=webhook_server.uri)
    first = relay_process()
    assert first.stop() == 0, first.log_path.read_text()  # the relay has started once (its watermark), then is down
    model_id = registry.model_id_of(webhook_server.model_uri)
    for name in [*names, decoy]:
        client.create_registered_model(name)
        client.create_model_version(name, source=webhook_server.model_uri, model_id=model_id)
    client.create_model_version(names[0], source=webhook_server.model_uri, model_id=model_id)
    for name in names:  # the one quoting function, against MLflow's real filter grammar
        versions = registry.list_versions(client, name)
        assert {v.name for v in versions} == {name}
        assert sorted(v.version for v in versions) == (["1", "2"] if name == names[0] else ["1"])
        quoted = registry.quote_filter_value(name)
        if quoted is not None:
            assert {v.name for v in client.search_model_versions(f"name = {quoted}")} == {name}
    assert registry.quote_filter_value(names[-1]) is None  # both quote characters: no literal exists
    time.sleep(5)  # MLflow's retry to the dead relay is over: those deliveries are gone
    process = relay_process()
    wait_for(lambda: all(dispatched(github_stand_in, n) for n in [*names, decoy]), timeout=30)
    assert dispatched(github_stand_in, names[0]) == ["1", "2"]
    assert all(dispatched(github_stand_in, n) == ["1"] for n in [*names[1:], decoy])
    assert process.metric("reconciled_total") == 8


# --- signed but malformed bodies (finding 22) ---------------------------------------------------------
def test_signed_malformed_bodies_are_answered_400_and_counted(relay_process, github_stand_in):
    process = relay_process(tracking_uri=None)
    created = {"entity": "model_version", "action": "created"}
    bad_payloads = [b"[1,2,3]", b'{"data":"x"}', json.dumps({**created, "data": "x"}).encode(),
                    json.dumps({**created, "data": {"name": 5, "version": "1"}}).encode(),
                    json.dumps({**created, "data": {"name": "m", "version": "abc"}}).encode(),
                    json.dumps({**created, "data": {"name": "m"}}).encode(),
                    b'{"entity":"model_version","action":"created","data":{"name":"\\udc80","version":"1"}}',
                    json.dumps({"entity": "model_version_alias", "action": "created",
                                "data": {"name": "m", "alias": ["x"]}}).encode()]
    bad_json = [b'{"entity":"model_version","action":"created","data":{"name":"\xff\xfe","version":"1"}}',
                b"[" * 50000, b"{not json"]
    for body in bad_payloads + bad_json:
        assert post(process.port, body) == 400, body[:60]
    metrics = process.metrics()
    assert f'relay_rejected{{reason="bad_payload"}} {len(bad_payloads)}' in metrics
    assert f'relay_rejected{{reason="bad_json"}} {len(bad_json)}' in metrics
    assert post(process.port, json.dumps({"entity": "registered_model", "action": "created",
                                          "data": {"name": "m"}}).encode()) == 202  # well-formed, not forwarded
    assert post(process.port, envelope("well-formed", 1)) == 200
    wait_for(lambda: dispatched(github_stand_in, "well-formed") == ["1"], timeout=10)
    assert "Traceback" not in process.output()


# --- secrets and file modes (finding 23) -------------------------------------------------------------
@pytest.mark.parametrize("secret", [" " * 40, "x" * 31, "\t" + "y" * 30 + "\n"])
def test_a_short_or_blank_webhook_secret_is_refused_naming_the_variable(tmp_path, secret):
    env = {"RELAY_WEBHOOK_SECRET": secret, "GITHUB_TOKEN": "gh-test-token"}
    for args in (["serve", "--github-repo", GITHUB_REPO, "--db", str(tmp_path / "r.db"), "--port", "0"],
                 ["register-webhook", "--tracking-uri", "http://127.0.0.1:9", "--url", "http://127.0.0.1:9/webhook"]):
        done = run_script("relay", *args, env=env, timeout=30)
        assert done.returncode == 2, done.stderr
        assert "$RELAY_WEBHOOK_SECRET" in done.stderr and "32 bytes" in done.stderr
    assert not (tmp_path / "r.db").exists()


def test_the_queue_files_are_readable_by_their_owner_only(relay_process, github_stand_in):
    process = relay_process(tracking_uri=None)
    assert post(process.port, envelope("private", 1)) == 200
    wait_for(lambda: dispatched(github_stand_in, "private") == ["1"], timeout=10)
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(process.db) + suffix)
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
