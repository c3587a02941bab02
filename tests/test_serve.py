"""The serving step as a user runs it: a real `serve` process on a real MLflow server.

Promotion and rollback happen while requests keep coming; each answer's X-Model-Version header and
the capture files are read back from outside, as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from model_lifecycle.api import lifecycle
from model_lifecycle.edges.local_server import free_port

TARGET, SLICE = "target", "size_band"


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def payload(frame: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode()


def promote(tracking_uri: str, name: str, version: str) -> None:
    lifecycle.promote(lifecycle.PromoteRequest(name, version, force=True, skip_card_check=True,
                                               reason="serve test", tracking_uri=tracking_uri))


class Serving:
    """A `scripts/serve.py` process; stopped with SIGTERM so that its capture queue is flushed."""

    def __init__(self, tracking_uri: str, name: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "serve.py"), "--tracking-uri", tracking_uri, "--model", name,
             "--port", str(self.port), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                code, _, body = http("GET", f"{self.url}/health", timeout=2)
                if code == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("serve did not become healthy")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.stderr.read()


@pytest.fixture()
def holdout(trained) -> pd.DataFrame:
    return pd.read_csv(trained["logistic"].holdout_path).drop(columns=[TARGET, SLICE])


def test_promotion_and_rollback_under_load_fail_no_request_and_capture_every_record(
        tracking_uri, make_versions, model_name, holdout, tmp_path):
    v1, v2 = make_versions(2)
    promote(tracking_uri, model_name, v1)
    capture = tmp_path / "capture"
    server = Serving(tracking_uri, model_name, "--poll-seconds", "0.5", "--capture-dir", str(capture))
    try:
        health = server.wait_ready()
        assert health["version"] == v1 and health["alias"] == "champion"
        answers: list[tuple[int, str | None, str | None, int]] = []
        stop = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop.is_set():
                rows = holdout.iloc[[i % len(holdout), (i + 1) % len(holdout)]]
                code, headers, _ = http("POST", f"{server.url}/invocations", payload(rows))
                answers.append((code, headers.get("x-model-version"), headers.get("x-request-id"), len(rows)))
                i += 1

        senders = [threading.Thread(target=traffic) for _ in range(3)]
        for sender in senders:
            sender.start()
        time.sleep(1)
        promote(tracking_uri, model_name, v2)
        switched_at = time.monotonic()
        while not any(v == v2 for _, v, _, _ in answers[-20:]) and time.monotonic() - switched_at < 30:
            time.sleep(0.1)
        switch_seconds = time.monotonic() - switched_at
        time.sleep(1)
        lifecycle.rollback(lifecycle.RollbackRequest(model_name, "serve test: back", tracking_uri=tracking_uri))
        code, _, body = http("POST", f"{server.url}/-/reload")  # at once, not at the next poll
        assert code == 200 and json.loads(body)["version"] == v1
        time.sleep(1)
        stop.set()
        for sender in senders:
            sender.join()
        stats = json.loads(http("GET", f"{server.url}/health")[2])["capture"]
    finally:
        log = server.stop()
    assert stats["dropped_queue_full"] == stats["dropped_write_error"] == stats["parse_errors"] == 0, stats
    assert [a for a in answers if a[0] != 200] == [], log[-2000:]
    assert server.process.returncode == 0, log[-2000:]  # a clean stop (SIGTERM) exits 0, capture flushed
    versions = [v for _, v, _, _ in answers]
    assert v2 in versions and versions[-1] == v1
    assert versions.index(v2) > 0  # v1 first, then v2, then v1 again
    assert switch_seconds < 30  # model load time plus at most one poll interval
    # capture: every record of every answered request, with the version that answered it
    import pyarrow.dataset as ds

    table = ds.dataset(str(capture), format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == sum(n for *_, n in answers)
    answered = {rid: v for _, v, rid, _ in answers}
    by_request = table.groupby("request_id")["model_version"].first().to_dict()
    assert by_request == answered
    assert set(holdout.columns) <= set(table.columns) and table["prediction"].notna().all()
    assert {"date", "hour"} <= set(table.columns)


def test_a_version_that_cannot_load_is_not_switched_to(tracking_uri, make_versions, model_name, holdout, client):
    import mlflow

    (v1,) = make_versions(1)
    promote(tracking_uri, model_name, v1)

    class Broken(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            raise RuntimeError("this model cannot load")

        def predict(self, context, model_input):
            return model_input

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Broken(), input_example=holdout.head(2))
    broken = mlflow.register_model(info.model_uri, model_name).version
    server = Serving(tracking_uri, model_name, "--poll-seconds", "60")
    try:
        server.wait_ready()
        promote(tracking_uri, model_name, str(broken))
        code, _, body = http("POST", f"{server.url}/-/reload", timeout=120)
        assert code == 200 and "failed to load" in json.loads(body)["error"]
        code, headers, _ = http("POST", f"{server.url}/invocations", payload(holdout.head(3)))
        assert code == 200 and headers["x-model-version"] == v1
        health = json.loads(http("GET", f"{server.url}/health")[2])
        assert health["version"] == v1 and "cannot load" in health["last_error"]
        metrics = http("GET", f"{server.url}/metrics")[2].decode()
        assert 'model_reloads_total{outcome="failed"} 1.0' in metrics
    finally:
        server.stop()


def test_a_request_that_does_not_match_the_signature_is_a_counted_400(
        tracking_uri, make_versions, model_name, holdout):
    (v1,) = make_versions(1)
    promote(tracking_uri, model_name, v1)
    server = Serving(tracking_uri, model_name)
    try:
        server.wait_ready()
        wrong = holdout.head(2).rename(columns={holdout.columns[0]: "not_a_feature"})
        for body in (payload(wrong), b"", b"{not json", json.dumps({"dataframe_split": {"columns": ["x"]}}).encode()):
            code, headers, answer = http("POST", f"{server.url}/invocations", body)
            assert code == 400, answer
            assert headers["x-model-version"] == v1
        assert "not_a_feature" in payload(wrong).decode()
        metrics = http("GET", f"{server.url}/metrics")[2].decode()
        assert f'model_requests_total{{outcome="client_error",version="{v1}"}} 4.0' in metrics
    finally:
        server.stop()


def test_bad_input_at_start_is_one_line_and_exit_2(tracking_uri, make_versions, model_name, tmp_path):
    (v1,) = make_versions(1)
    promote(tracking_uri, model_name, v1)
    script = [sys.executable, str(REPO / "scripts" / "serve.py"), "--tracking-uri", tracking_uri]

    def start(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*script, *args], capture_output=True, text=True, timeout=120)

    unknown = start("--model", "no-such-model", "--port", str(free_port()))
    assert unknown.returncode == 2 and "'no-such-model' is not registered" in unknown.stderr
    no_alias = start("--model", model_name, "--alias", "nobody", "--port", str(free_port()))
    assert no_alias.returncode == 2 and "has no alias @nobody" in no_alias.stderr
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        taken = start("--model", model_name, "--port", str(busy.getsockname()[1]))
    finally:
        busy.close()
    assert taken.returncode == 2 and "cannot be used" in taken.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    unwritable = start("--model", model_name, "--port", str(free_port()), "--capture-dir", str(blocker / "capture"))
    assert unwritable.returncode == 2 and "--capture-dir" in unwritable.stderr
    for result in (unknown, no_alias, taken, unwritable):
        assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.skipif(os.geteuid() != 0 and not Path("/dev/shm").exists(), reason="needs a small tmpfs")
def test_capture_that_cannot_write_drops_and_counts_but_answers(tracking_uri, make_versions, model_name, holdout,
                                                                 tmp_path):
    (v1,) = make_versions(1)
    promote(tracking_uri, model_name, v1)
    capture = tmp_path / "capture"
    server = Serving(tracking_uri, model_name, "--capture-dir", str(capture))
    try:
        server.wait_ready()
        capture.rename(tmp_path / "gone")  # the folder vanishes under the running server
        (tmp_path / "capture").write_text("now a file: nothing can be written below it")
        for _ in range(5):
            code, _, _ = http("POST", f"{server.url}/invocations", payload(holdout.head(2)))
            assert code == 200
        deadline = time.monotonic() + 15
        dropped = 0.0
        while time.monotonic() < deadline and dropped < 10:
            metrics = http("GET", f"{server.url}/metrics")[2].decode()
            line = next(l for l in metrics.splitlines() if l.startswith('model_capture_records_dropped_total{reason="write_error"}'))
            dropped = float(line.split()[-1])
            time.sleep(0.5)
        assert dropped == 10
    finally:
        server.stop()


def test_rollout_verification_rolls_back_when_an_endpoint_keeps_the_old_version(
        tracking_uri, make_versions, model_name, client):
    from conftest import aliases, audit_events

    v1, v2 = make_versions(2)
    promote(tracking_uri, model_name, v1)
    following = Serving(tracking_uri, model_name, "--poll-seconds", "0.5")
    stuck = Serving(tracking_uri, model_name, "--version", v1)  # a replica that never follows the alias
    try:
        following.wait_ready()
        stuck.wait_ready()
        promote(tracking_uri, model_name, v2)
        verified = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "verify_rollout.py"), "--tracking-uri", tracking_uri,
             "--model", model_name, "--version", v2, "--endpoint", following.url, "--deadline", "30",
             "--policy", "", "--json"], capture_output=True, text=True, timeout=120)
        assert verified.returncode == 0, verified.stderr  # the following replica alone: verified
        result = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "verify_rollout.py"), "--tracking-uri", tracking_uri,
             "--model", model_name, "--endpoint", following.url, "--endpoint", stuck.url, "--deadline", "3",
             "--on-failure", "rollback", "--policy", "", "--json"], capture_output=True, text=True, timeout=120)
    finally:
        following.stop()
        stuck.stop()
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["endpoints"][stuck.url]["version"] == v1 and document["endpoints"][following.url]["ok"]
    assert document["rolled_back"] and document["rolled_back_to"] == v1
    assert aliases(client, model_name)["champion"] == v1
    rollback = audit_events(client, model_name)[-1]
    assert rollback["action"] == "rollback" and stuck.url in rollback["reason"]


def test_shadow_records_carry_both_predictions_and_the_answer_is_the_champions(
        tracking_uri, make_versions, model_name, holdout, tmp_path):
    v1, v2 = make_versions(2)  # v1 logistic regression, v2 gradient boosting
    promote(tracking_uri, model_name, v1)
    lifecycle.stage(lifecycle.StageRequest(model_name, v2, force=True, reason="shadow test", tracking_uri=tracking_uri))
    capture = tmp_path / "capture"
    server = Serving(tracking_uri, model_name, "--capture-dir", str(capture), "--shadow-alias", "challenger",
                     "--shadow-fraction", "1.0")
    try:
        health = server.wait_ready()
        assert health["shadow"] == {"alias": "challenger", "version": v2, "fraction": 1.0}
        answers = []
        for i in range(10):
            code, headers, body = http("POST", f"{server.url}/invocations", payload(holdout.iloc[[i]]))
            assert code == 200 and headers["x-model-version"] == v1
            answers.append((headers["x-request-id"], json.loads(body)["predictions"][0]))
    finally:
        server.stop()
    import pyarrow.dataset as ds

    table = ds.dataset(str(capture), format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == 10
    assert set(table["model_version"]) == {v1} and set(table["shadow_version"]) == {v2}
    assert table["shadow_prediction"].notna().all()
    served = dict(answers)
    assert all(served[row.request_id] == row.prediction for row in table.itertuples())
