"""Promotions racing each other, crashing half-way, and having their REST calls held back.

A kill finds crash bugs, a delay finds race bugs: every promoter here is a real process running
``scripts/transition.py`` against a real ``mlflow server``; some go through ``delay_proxy`` which
holds back one chosen REST call (before it reaches the server, so it lands late, or after, so the
answer is slow). The invariants checked after every scenario:

* never two winners: at most one promoter exits 0 with a change, the others exit 1 (or 0 when
  their change is the one that was made); nobody exits 2 or 3;
* the audit record agrees with the registry: @champion is the top of the recorded champion stack,
  every promotion is recorded exactly once, no change is left pending, no claim is left open.

The promoters start with MLflow already imported and wait for a line on stdin, so that "start
together" and "start while that call is held" mean what they say.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import REPO, aliases, audit_events, both_backends, record_passing_verdict

from delay_proxy import DelayProxy

# The REST calls of one promotion (transition.py --to production, champion v1, challenger the candidate),
# in order, as the proxy logs them. test_rest_calls_of_a_promotion keeps this list true.
PROMOTION_CALLS = [
    "GET /api/2.0/mlflow/model-versions/get",  # the version, read once (archived? tags), before the approval
    "GET /api/2.0/mlflow/registered-models/get",  # aliases and change_seq, one read
    "POST /api/2.0/mlflow/experiments/create",  # claim change #n (the intent in its tags)
    "GET /api/2.0/mlflow/experiments/get-by-name",  # fence: #n+1 not claimed, before the commit
    "POST /api/2.0/mlflow/registered-models/alias",  # commit: @champion
    "POST /api/2.0/mlflow/registered-models/alias",  # @previous-champion
    "DELETE /api/2.0/mlflow/registered-models/alias",  # @challenger removed
    "POST /api/2.0/mlflow/model-versions/set-tag",  # lifecycle.champion_since
    "GET /api/2.0/mlflow/experiments/get-by-name",  # fence again, after the writes
    "POST /api/2.0/mlflow/runs/set-tag",  # the audit event
    "POST /api/2.0/mlflow/registered-models/set-tag",  # change_seq = n
    "POST /api/2.0/mlflow/experiments/delete",  # the claim is complete (and hidden)
]
SOURCE = "s3://never-read/model"  # versions are only moved between aliases here, never loaded
FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true"}

RUNNER = """
import runpy, sys
import mlflow, mlflow.tracking  # noqa: F401 - the slow imports happen before the start signal
import model_lifecycle.core.lifecycle, model_lifecycle.edges.main  # noqa: F401
sys.stdin.readline()
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Promoter:
    """``transition.py --to production`` in its own process, started by ``go()``."""

    def __init__(self, uri: str, name: str, version: str, expect: str, env: dict[str, str] | None = None,
                 failpoint: str | None = None) -> None:
        self.version = version
        argv = [str(REPO / "scripts" / "transition.py"), "--tracking-uri", uri, "--model", name, "--version",
                version, "--to", "production", "--expect-champion", expect, "--force", "--reason", "race",
                "--skip-card-check"]
        full_env = {**os.environ, **FAST, **(env or {})}
        full_env.pop("LIFECYCLE_FAILPOINT", None)
        if failpoint:
            full_env["LIFECYCLE_FAILPOINT"] = failpoint
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                     cwd=REPO)
        self.stderr = ""

    def go(self) -> "Promoter":
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self

    def wait(self, timeout: float = 120) -> int:
        _, self.stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode


# Tests marked @both_backends also run against PostgreSQL with 4 server workers (tests/postgres.py).
# The 8 promoters, the stale claim broken by two callers and each call held back past the TTL run
# there 20 times each, in tests/test_postgres.py.
@pytest.fixture()
def tracking_uri(tracking_uri, backend_uri):
    return backend_uri


@pytest.fixture()
def fresh(client) -> Any:
    """A model with versions 1..n registered straight through the client; v1 is champion."""
    from model_lifecycle.core import lifecycle

    def make(n: int) -> str:
        name = f"race-{uuid.uuid4().hex[:10]}"
        client.create_registered_model(name)
        for _ in range(n):
            client.create_model_version(name, SOURCE)
        record_passing_verdict(client, name, "1", None)  # v1 passed the gate: no champion to compare with
        lifecycle.stage(client, name, "1", lifecycle.AliasNames())
        lifecycle.promote(client, name, "1", lifecycle.AliasNames(), expect_champion="none")
        return name

    return make


def open_claims(client, name: str) -> list[str]:
    found = client.search_experiments(filter_string=f"name LIKE 'model-lifecycle-claims/{name}/%'")
    return sorted(e.name for e in found)


def consistent(client, tracking_uri: str, name: str) -> list[dict[str, Any]]:
    """Assert the registry and the audit record agree and nothing is left open; the events."""
    from model_lifecycle.api.status import StatusRequest, status

    result = status(StatusRequest(name, tracking_uri=tracking_uri))
    assert result.drift is None, result.drift
    assert result.pending is None, result.pending
    assert open_claims(client, name) == []
    assert client.search_registered_models(f"name = '{name}.lifecycle-lock'") == []
    events = audit_events(client, name)
    numbered = [e["seq"] for e in events if "seq" in e]
    assert len(numbered) == len(set(numbered)), numbered
    promotions = [e["id"] for e in events if e["action"] == "promote"]
    assert len(promotions) == len(set(promotions))
    return events


def promotions_after_v1(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["version"], e.get("details", {}).get("expected_champion")) for e in events
            if e["action"] == "promote"][1:]


def outcome(client, tracking_uri, name, promoters: list[Promoter], codes: list[int]) -> list[dict[str, Any]]:
    """Never two winners, never exit 2 or 3; the record names exactly the winner."""
    detail = "\n".join(f"v{p.version} exit {c}: {p.stderr.strip()[-600:]}" for p, c in zip(promoters, codes))
    assert set(codes) <= {0, 1}, detail
    events = consistent(client, tracking_uri, name)
    made = promotions_after_v1(events)
    assert len(made) <= 1, (made, detail)
    champion = aliases(client, name)["champion"]
    if made:
        assert champion == made[0][0]
        assert [p.version for p, c in zip(promoters, codes) if c == 0] == [champion], detail
    else:
        assert champion == "1" and 0 not in codes, detail
    return events


# --- (a) many promoters, one expectation ------------------------------------------------------------


def test_eight_promoters_with_the_same_expectation_one_wins(client, tracking_uri, fresh):
    name = fresh(9)
    promoters = [Promoter(tracking_uri, name, str(v), "1") for v in range(2, 10)]
    for p in promoters:
        p.go()
    codes = [p.wait() for p in promoters]
    assert sorted(codes) == [0] + [1] * 7, [p.stderr[-300:] for p in promoters]
    events = outcome(client, tracking_uri, name, promoters, codes)
    assert len(promotions_after_v1(events)) == 1
    assert all("moved since you looked" in p.stderr for p, c in zip(promoters, codes) if c == 1)


# --- (b) the reproduction, and a held-back call at every step ---------------------------------------


def dead_holder(tracking_uri: str, name: str, version: str, expect: str) -> None:
    """Leave a change behind whose holder is a dead process: its commit never reaches the server
    (held for ever by a proxy) and the process is killed (SIGKILL) meanwhile."""
    with DelayProxy(tracking_uri) as proxy:
        held = proxy.hold("POST /api/2.0/mlflow/registered-models/alias", phase="drop")
        dead = Promoter(proxy.uri, name, version, expect).go()
        assert held.arrived.wait(60), proxy.calls
        dead.proc.kill()
        dead.wait()


@pytest.mark.parametrize("ttl", [pytest.param("20", id="holders-outlive-the-delays"),
                                 pytest.param("2", id="delays-outlive-the-ttl")])
@both_backends
def test_delayed_requests_after_a_crash_never_make_two_winners(client, tracking_uri, fresh, ttl):
    """The finding: v1 champion, a change left by a dead process; C (v3) has the call that ends its
    takeover of it held back 6 s (the lock's DELETE before the fix; deleting the taken-over claims
    after), A (v2) its first alias write 8 s. Before the fix both exited 0."""
    name = fresh(4)
    dead_holder(tracking_uri, name, "4", "1")
    env = {"LIFECYCLE_LOCK_TTL_SECONDS": ttl}
    with DelayProxy(tracking_uri) as c_proxy, DelayProxy(tracking_uri) as a_proxy:
        before_fix = c_proxy.hold("DELETE /api/2.0/mlflow/registered-models/delete", seconds=6)
        after_fix = c_proxy.hold("POST /api/2.0/mlflow/experiments/delete", seconds=6)
        a_proxy.hold("POST /api/2.0/mlflow/registered-models/alias", seconds=8)
        c = Promoter(c_proxy.uri, name, "3", "1", env=env)
        a = Promoter(a_proxy.uri, name, "2", "1", env=env)
        c.go()
        deadline = time.monotonic() + 60
        while not (before_fix.arrived.is_set() or after_fix.arrived.is_set()) and time.monotonic() < deadline:
            time.sleep(0.05)
        a.go()  # while C's call is held
        codes = [c.wait(), a.wait()]
    events = outcome(client, tracking_uri, name, [c, a], codes)
    assert sorted(codes) == [0, 1]
    # the dead holder's change (v4) was recorded as abandoned, never made
    assert [e["details"]["of_seq"] for e in events if e["action"] == "abandon"]
    assert "4" not in [e["version"] for e in events if e["action"] == "promote"]


@both_backends
def test_rest_calls_of_a_promotion(client, tracking_uri, fresh):
    """The calls the next test holds back, one at a time; 12 (the command and the core share one read of
    the version)."""
    name = fresh(2)
    client.set_registered_model_alias(name, "challenger", "2")
    with DelayProxy(tracking_uri) as proxy:
        assert Promoter(proxy.uri, name, "2", "1").go().wait() == 0
        calls = list(proxy.calls)
    assert calls == PROMOTION_CALLS


# The same promotion called in process (lifecycle.promote): the core reads the version itself, so the
# same calls.
CORE_CALLS = PROMOTION_CALLS


class ThreadPromoter:
    """``lifecycle.promote`` in a thread of this process, with its own client (a process each would
    spend most of each case importing MLflow); ``code`` is the exit code its outcome maps to."""

    def __init__(self, uri: str, name: str, version: str, expect: str) -> None:
        self.version, self.code, self.stderr = version, None, ""
        self.thread = threading.Thread(target=self._run, args=(uri, name, expect), daemon=True)

    def _run(self, uri: str, name: str, expect: str) -> None:
        from mlflow import MlflowClient

        from model_lifecycle.core import lifecycle
        from model_lifecycle.errors import ToolkitError

        own = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            lifecycle.promote(own, name, self.version, lifecycle.AliasNames(), expect_champion=expect, force=True,
                              reason="race")
            self.code = 0
        except ToolkitError as exc:
            self.code, self.stderr = exc.exit_code, exc.one_line()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion
            self.code, self.stderr = 99, repr(exc)

    def go(self) -> "ThreadPromoter":
        self.thread.start()
        return self

    def wait(self, timeout: float = 120) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"v{self.version} still running after {timeout}s"
        return self.code


def _held(index: int) -> tuple[str, int]:
    key = CORE_CALLS[index]
    return key, CORE_CALLS[: index + 1].count(key)


@both_backends
def test_rest_calls_of_a_promotion_in_process(client, tracking_uri, fresh, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_LOCK_TTL_SECONDS", "20")
    name = fresh(2)
    client.set_registered_model_alias(name, "challenger", "2")
    with DelayProxy(tracking_uri) as proxy:
        assert ThreadPromoter(proxy.uri, name, "2", "1").go().wait() == 0
        calls = list(proxy.calls)
    assert calls == CORE_CALLS


@pytest.mark.parametrize("index", range(len(CORE_CALLS)),
                         ids=[f"{i:02d}-{c.split()[0]}-{c.rsplit('/', 2)[-2]}-{c.rsplit('/', 1)[-1]}"
                              for i, c in enumerate(CORE_CALLS)])
def test_each_call_of_a_promotion_held_back_while_another_promotes(client, tracking_uri, fresh, index,
                                                                   monkeypatch):
    """A (v2) has one call held back 3 s; B (v3, same expectation) starts the moment it is held. The
    claims expire after 1.5 s, so B takes A's change over whenever A is held after claiming."""
    for key, value in {**FAST, "LIFECYCLE_LOCK_TTL_SECONDS": "1.5"}.items():
        monkeypatch.setenv(key, value)
    name = fresh(3)
    client.set_registered_model_alias(name, "challenger", "2")
    key, nth = _held(index)
    with DelayProxy(tracking_uri) as proxy:
        held = proxy.hold(key, nth=nth, seconds=3)
        a = ThreadPromoter(proxy.uri, name, "2", "1").go()
        assert held.arrived.wait(60), proxy.calls
        b = ThreadPromoter(tracking_uri, name, "3", "1").go()
        codes = [a.wait(), b.wait()]
    outcome(client, tracking_uri, name, [a, b], codes)


# --- (c) a stale claim taken over by two callers at once --------------------------------------------


@pytest.mark.parametrize(("failpoint", "taken_over_as"),
                         [("after-claim", "abandon"), ("after-commit", "recover"), ("before-seq", "recover")])
def test_stale_claim_taken_over_by_two_callers_at_once(client, tracking_uri, fresh, failpoint, taken_over_as):
    name = fresh(2)
    client.set_registered_model_alias(name, "challenger", "2")
    # the same command rerun twice at the same moment (started now, MLflow imported while the first dies)
    reruns = [Promoter(tracking_uri, name, "2", "1") for _ in range(2)]
    assert Promoter(tracking_uri, name, "2", "1", failpoint=failpoint).go().wait() == 70
    for p in reruns:  # each finds the dead holder's claim
        p.go()
    codes = [p.wait() for p in reruns]
    assert codes == [0, 0], [p.stderr[-600:] for p in reruns]
    events = consistent(client, tracking_uri, name)
    assert promotions_after_v1(events) == [("2", "1")]
    assert Counter(e["action"] for e in events if e["action"] in ("recover", "abandon")) == {taken_over_as: 1}
    assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}


# --- (d) a slow reply to the claim: the client retries and is told "already exists" -----------------


@both_backends
def test_slow_claim_reply_is_recognised_as_ones_own(client, tracking_uri, fresh):
    name = fresh(2)
    client.set_registered_model_alias(name, "challenger", "2")
    env = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "1", "LIFECYCLE_LOCK_TTL_SECONDS": "60"}
    with DelayProxy(tracking_uri) as proxy:
        proxy.hold("POST /api/2.0/mlflow/experiments/create", seconds=2.5, phase="reply")
        proxy.hold("POST /api/2.0/mlflow/registered-models/create", seconds=2.5, phase="reply")  # the lock, before
        started = time.monotonic()
        promoter = Promoter(proxy.uri, name, "2", "1", env=env).go()
        code = promoter.wait()
        elapsed = time.monotonic() - started
        creates = max(proxy.calls.count("POST /api/2.0/mlflow/experiments/create"),
                      proxy.calls.count("POST /api/2.0/mlflow/registered-models/create"))
    assert code == 0, promoter.stderr
    assert creates == 2  # the slow one, and the client's retry answered RESOURCE_ALREADY_EXISTS
    assert elapsed < 30  # it went on at once: it never waited for its own claim to expire (60 s)
    events = consistent(client, tracking_uri, name)
    assert promotions_after_v1(events) == [("2", "1")]
    assert not [e for e in events if e["action"] in ("recover", "abandon")]
