"""The toolkit on a PostgreSQL-backed MLflow with 4 server workers: races repeated, a registry at scale, quoting.

The sqlite server serialises every write through one worker and one file; here 4 worker processes
run requests truly side by side against PostgreSQL (tests/postgres.py). Every race scenario is
repeated ``ROUNDS`` times, each time on a fresh model, and each round checks the invariants of
test_races.py (never two winners, never exit 2 or 3, the registry equals the audit record, nothing
left pending or claimed) plus its own:

* 8 promoters with the same ``--expect-champion``: exactly one wins, the other seven are refused,
  and the audit record holds exactly one event after the set-up, numbered next in the sequence;
* a holder dies (at each failpoint in turn) and two reruns break its stale claim at once: the
  change is finished or abandoned exactly once and made exactly once;
* a holder stalled past its time-to-live (each REST call of a promotion held back in turn, longer
  than the TTL) while another promotes: a holder stalled before its commit never writes an alias,
  and a stalled write that lands late never leaves a newer promotion overwritten;
* audit order does not follow client clocks: promoters whose clocks are an hour off are recorded
  in the order of the sequence the store enforced.

Promoters are whole ``transition.py`` processes, forked from one warm process (MLflow imported
once), so a round costs what its REST calls cost. The scale tests copy rows MLflow wrote for real
(``postgres.clone_versions``) to build 200 models x 50 versions and one model with 2,000 versions
(20,000 in ``bench/bench_postgres.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import postgres
import pytest
from conftest import REPO, aliases, call
from delay_proxy import DelayProxy
from test_races import FAST, PROMOTION_CALLS, SOURCE, consistent, outcome, promotions_after_v1

from model_lifecycle.adapters import registry
from model_lifecycle.edges.commands import archive, rollback, status

ROUNDS = 20
ALIAS_WRITES = ("POST /api/2.0/mlflow/registered-models/alias", "DELETE /api/2.0/mlflow/registered-models/alias")
COMMIT_INDEX = PROMOTION_CALLS.index("POST /api/2.0/mlflow/registered-models/alias")


@pytest.fixture()
def tracking_uri(pg_tracking_uri) -> str:
    """Every test here runs on PostgreSQL (``client`` follows)."""
    return pg_tracking_uri


# --- promoters: transition.py processes forked from one warm process ---------------------------------

FORKER = r"""
import json, os, runpy, sys, time
import mlflow, mlflow.tracking  # noqa: F401 - imported once, before any fork
import model_lifecycle.core.lifecycle, model_lifecycle.edges.main, model_lifecycle.edges.commands.transition  # noqa

def child(job, gate):
    os.read(gate, 1)  # released once every job of the batch is forked: they start together
    out = os.open(job["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.environ.pop("LIFECYCLE_FAILPOINT", None)
    os.environ.update(job["env"])
    if job.get("clock_offset"):
        real = time.time
        time.time = lambda: real() + job["clock_offset"]
    sys.argv = list(job["argv"])
    code = 0
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

children = []
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "start":
        gate, release = os.pipe()
        for job in request["jobs"]:
            pid = os.fork()
            if pid == 0:
                os.close(release)
                child(job, gate)
            children.append(pid)
        os.close(gate)
        os.write(release, b"x" * len(request["jobs"]))
        os.close(release)
        print(json.dumps({"started": len(request["jobs"])}), flush=True)
    elif request["op"] == "wait":
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        children = []
        print(json.dumps({"codes": codes}), flush=True)
"""


@dataclass
class Run:
    """One ``transition.py --to production`` process, as test_races.Promoter runs it."""

    version: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    clock_offset: float = 0.0
    output: str = ""
    code: int | None = None
    stderr: str = ""


def promotion(uri: str, name: str, version: str, expect: str, env: dict[str, str] | None = None,
              clock_offset: float = 0.0) -> Run:
    argv = [str(REPO / "scripts" / "transition.py"), "--tracking-uri", uri, "--model", name, "--version", version,
            "--to", "production", "--expect-champion", expect, "--force", "--reason", "race", "--skip-card-check"]
    return Run(version, argv, dict(env or {}), clock_offset)


class Forker:
    """A process with MLflow and the toolkit imported that forks one child per run; ``start`` releases a
    batch together, ``wait`` collects every started child's exit code and output."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="forker-"))
        self.proc = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=REPO, env={**os.environ, **FAST})
        assert self._read() == "ready"
        self.started: list[Run] = []
        self.count = 0

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the forker died (exit {self.proc.poll()})"
        return line.strip()

    def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read())

    def start(self, *runs: Run) -> None:
        for run in runs:
            self.count += 1
            run.output = str(self.dir / f"run-{self.count}.txt")
        self._send({"op": "start", "jobs": [{"argv": r.argv, "env": r.env, "clock_offset": r.clock_offset,
                                             "output": r.output} for r in runs]})
        self.started += runs

    def wait(self) -> list[int]:
        codes = self._send({"op": "wait"})["codes"]
        for run, code in zip(self.started, codes):
            run.code, run.stderr = code, Path(run.output).read_text(errors="replace")
        self.started = []
        return codes

    def run(self, *runs: Run) -> list[int]:
        self.start(*runs)
        return self.wait()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for path in self.dir.iterdir():
            path.unlink()
        self.dir.rmdir()


@pytest.fixture(scope="module")
def forker():
    started = Forker()
    yield started
    started.close()


def fresh(client, n: int) -> str:
    """A model with versions 1..n (never loaded); v1 champion through the toolkit (changes #1 and #2)."""
    from conftest import record_passing_verdict

    from model_lifecycle.core import lifecycle

    name = f"pg-race-{uuid.uuid4().hex[:10]}"
    client.create_registered_model(name)
    for _ in range(n):
        client.create_model_version(name, SOURCE, await_creation_for=0)
    record_passing_verdict(client, name, "1", None)
    lifecycle.stage(client, name, "1", lifecycle.AliasNames())
    lifecycle.promote(client, name, "1", lifecycle.AliasNames(), expect_champion="none")
    return name


def sequence_is_gapless(client, name: str, events: list[dict[str, Any]]) -> list[int]:
    """Every claimed number 1..n has exactly one outcome in the audit record: its event (``seq``), or,
    for a change abandoned after its holder died, the ``abandon`` event recorded under the taker's
    number (``details.of_seq``). The model's change_seq is n, or lower when a stalled holder's write
    of it landed after its taker's (claims.py reads past a lagging change_seq)."""
    numbered = [e["seq"] for e in events if "seq" in e]
    assert len(numbered) == len(set(numbered)) and numbered == sorted(numbered), numbered
    outcomes = numbered + [e["details"]["of_seq"] for e in events if e["action"] == "abandon"]
    assert sorted(outcomes) == list(range(1, len(outcomes) + 1)), (numbered, outcomes)
    assert 1 <= int(client.get_registered_model(name).tags["lifecycle.change_seq"]) <= numbered[-1]
    return numbered


# --- races, each repeated ROUNDS times -----------------------------------------------------------------


def test_eight_promoters_with_the_same_expectation_one_wins_every_round(client, tracking_uri, forker):
    winners = []
    for round_number in range(ROUNDS):
        name = fresh(client, 9)
        runs = [promotion(tracking_uri, name, str(v), "1") for v in range(2, 10)]
        codes = forker.run(*runs)
        detail = f"round {round_number}: " + "; ".join(f"v{r.version} {r.code}: {r.stderr.strip()[-300:]}"
                                                      for r in runs)
        assert sorted(codes) == [0] + [1] * 7, detail
        events = outcome(client, tracking_uri, name, runs, codes)
        winner = next(r.version for r in runs if r.code == 0)
        # exactly one event after the set-up (stage v1 #1, promote v1 #2): the winner's, numbered #3
        after = [(e["action"], e["version"], e.get("seq")) for e in events if e.get("seq", 0) > 2]
        assert after == [("promote", winner, 3)], (after, detail)
        assert sequence_is_gapless(client, name, events) == [1, 2, 3]
        assert client.get_registered_model(name).tags["lifecycle.change_seq"] == "3"
        assert all("moved since you looked" in r.stderr for r in runs if r.code == 1), detail
        winners.append(winner)
    assert len(winners) == ROUNDS


FAILPOINTS = [("after-claim", "abandon"), ("after-commit", "recover"), ("before-seq", "recover")]


def test_two_callers_break_a_dead_holders_stale_claim_every_round(client, tracking_uri, forker):
    for round_number in range(ROUNDS):
        failpoint, taken_over_as = FAILPOINTS[round_number % len(FAILPOINTS)]
        name = fresh(client, 2)
        client.set_registered_model_alias(name, "challenger", "2")
        dead = promotion(tracking_uri, name, "2", "1", env={"LIFECYCLE_FAILPOINT": failpoint})
        assert forker.run(dead) == [70], dead.stderr
        reruns = [promotion(tracking_uri, name, "2", "1") for _ in range(2)]
        codes = forker.run(*reruns)  # together, each finding the dead holder's claim
        detail = f"round {round_number} ({failpoint}): " + "; ".join(r.stderr.strip()[-400:] for r in reruns)
        assert codes == [0, 0], detail
        events = consistent(client, tracking_uri, name)
        assert promotions_after_v1(events) == [("2", "1")], detail
        assert Counter(e["action"] for e in events if e["action"] in ("recover", "abandon")) == {taken_over_as: 1}
        assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}
        sequence_is_gapless(client, name, events)


# Each call of a promotion held back once, then the calls after the claim (fence, commit, alias
# moves, tag, fence, audit event) again until ROUNDS: 12 + 8 = 20 rounds.
CLAIM_INDEX = PROMOTION_CALLS.index("POST /api/2.0/mlflow/experiments/create")
STALLS = (list(range(len(PROMOTION_CALLS))) + list(range(CLAIM_INDEX + 1, len(PROMOTION_CALLS) - 1)) * ROUNDS)[:ROUNDS]
TTL = "1.5"
STALL_SECONDS = 3.0


def test_a_holder_stalled_past_its_ttl_never_overwrites_a_newer_promotion(client, tracking_uri, forker):
    """A (v2) has one REST call held back 3 s (before it reaches the server: a write lands late) with
    claims expiring after 1.5 s; B (v3, same expectation) starts the moment it is held, so it takes
    A's change over whenever A is stalled after claiming."""
    env = {"LIFECYCLE_LOCK_TTL_SECONDS": TTL}
    seen = []
    for round_number, index in enumerate(STALLS):
        key = PROMOTION_CALLS[index]
        nth = PROMOTION_CALLS[: index + 1].count(key)
        name = fresh(client, 3)
        client.set_registered_model_alias(name, "challenger", "2")
        with DelayProxy(tracking_uri) as proxy:
            held = proxy.hold(key, nth=nth, seconds=STALL_SECONDS)
            a = promotion(proxy.uri, name, "2", "1", env=env)
            b = promotion(tracking_uri, name, "3", "1", env=env)
            forker.start(a)
            assert held.arrived.wait(60), proxy.calls
            forker.start(b)
            codes = forker.wait()
            a_calls = list(proxy.calls)
        detail = f"round {round_number} (held: #{index} {key}): A {a.code}: {a.stderr.strip()[-400:]}; " \
                 f"B {b.code}: {b.stderr.strip()[-400:]}"
        events = outcome(client, tracking_uri, name, [a, b], codes)
        if index < COMMIT_INDEX and a.code == 1:
            # stalled before its commit and taken over or outrun: it noticed before writing anything
            assert not [c for c in a_calls if c in ALIAS_WRITES], (a_calls, detail)
        made = promotions_after_v1(events)
        assert aliases(client, name)["champion"] == (made[0][0] if made else "1"), detail
        sequence_is_gapless(client, name, events)
        seen.append((index, a.code, b.code, sorted({e["action"] for e in events} - {"stage", "promote"})))
    print("held call, A's exit, B's exit, recovery events:", *seen, sep="\n  ")


# --- audit order is the store's sequence, not the writers' clocks ---------------------------------------


def test_audit_order_follows_the_claimed_sequence_not_client_clocks(client, tracking_uri, forker):
    """v2 is promoted by a machine whose clock is an hour slow, then v3 by one an hour fast, then v4 by
    one two hours slow: by their clocks the order would be v4, v2, v1, v3. The record keeps the
    order of the changes; rollback returns to the recorded previous champion."""
    name = fresh(client, 4)
    for version, offset in (("2", -3600.0), ("3", 3600.0), ("4", -7200.0)):
        expect = str(int(version) - 1)
        run = promotion(tracking_uri, name, version, expect, clock_offset=offset)
        assert forker.run(run) == [0], run.stderr
    events = consistent(client, tracking_uri, name)
    promotions = [(e["version"], e["seq"]) for e in events if e["action"] == "promote"]
    assert [v for v, _ in promotions] == ["1", "2", "3", "4"]
    assert [s for _, s in promotions] == sorted(s for _, s in promotions)
    clocks = {e["version"]: e["epoch_ms"] for e in events if e["action"] == "promote"}
    assert sorted(clocks, key=clocks.get) == ["4", "2", "1", "3"]  # what ordering by time would have said
    sequence_is_gapless(client, name, events)
    code, result = call(rollback, ["--tracking-uri", tracking_uri, "--model", name, "--reason", "clock test"])
    assert code == 0, result
    assert aliases(client, name) == {"champion": "3", "previous-champion": "2"}
    code, result = call(status, ["--tracking-uri", tracking_uri, "--model", name, "--audit"])
    assert code == 0 and "drift" not in result
    assert [e["version"] for e in result["audit"] if e["action"] in ("promote", "rollback")] == ["1", "2", "3", "4",
                                                                                                   "3"]


# --- a registry at scale (bench/bench_postgres.py: 20,000 versions) ---------------------------------------

MODELS, VERSIONS_EACH, BIG_VERSIONS = 200, 50, 2000
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


@dataclass
class Scale:
    tag: str
    big: str  # BIG_VERSIONS versions, version v created (BIG_VERSIONS - v) hours ago
    models: list[str]  # MODELS models of VERSIONS_EACH versions, version v created (50 - v) days ago
    quoted: list[str]  # those of them whose names need quoting in a filter
    decoy: str  # what the LIKE fallback of the name with both quote characters also matches
    created_ms: int  # when the template version (the newest of each model) was created


@pytest.fixture(scope="module")
def scale(pg_server, pg_cluster) -> Scale:
    """200 models x 50 versions and one model with 2,000 versions, their rows copied (postgres.clone_*)
    from a model and a version the server created through REST."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=pg_server.uri, registry_uri=pg_server.uri)
    tag = uuid.uuid4().hex[:6]
    template = f"scale-template-{tag}"
    client.create_registered_model(template)
    created_ms = int(client.create_model_version(template, SOURCE, await_creation_for=0).creation_timestamp)
    quoted = [f"it's-{tag}", f'say "hi"-{tag}', f"back\\slash-{tag}", f"trail-{tag}\\", f"quote\\'-{tag}",
              f"both'\"\\-{tag}", f"100%_under-{tag}"]
    decoy = f"bothx\"x-{tag}"
    models = [*quoted, decoy] + [f"scale-{tag}-{i:03d}" for i in range(MODELS - len(quoted) - 1)]
    assert postgres.clone_models(pg_cluster, pg_server.database, template, models) == MODELS
    assert postgres.clone_versions(pg_cluster, pg_server.database, template, models, 1, VERSIONS_EACH,
                                   step_ms=DAY_MS) == MODELS * VERSIONS_EACH
    big = f"scale-big-{tag}"
    client.create_registered_model(big)  # this one through REST, its versions copied
    assert postgres.clone_versions(pg_cluster, pg_server.database, template, [big], 1, BIG_VERSIONS,
                                   step_ms=HOUR_MS) == BIG_VERSIONS
    return Scale(tag, big, models, quoted, decoy, created_ms)


def cli(tracking_uri: str, name: str) -> list[str]:
    return ["--tracking-uri", tracking_uri, "--model", name]


def test_status_archive_promotion_and_rollback_on_a_model_with_many_versions(client, tracking_uri, scale, forker):
    from conftest import record_passing_verdict

    from model_lifecycle.edges.commands import transition

    big, last = scale.big, str(BIG_VERSIONS)
    before = str(BIG_VERSIONS - 1)
    code, result = call(status, cli(tracking_uri, big))
    assert code == 0, result
    assert [v["version"] for v in result["versions"]] == [str(v) for v in range(BIG_VERSIONS, 0, -1)]

    for version, expect in ((before, "none"), (last, before)):
        record_passing_verdict(client, big, version)
        assert call(transition, [*cli(tracking_uri, big), "--version", version, "--to", "staging"])[0] == 0
        if version == last:
            # the second promotion through a logging proxy: the REST calls of a promotion on a 3-version
            # model (test_races.PROMOTION_CALLS), none of them a version search
            with DelayProxy(tracking_uri) as proxy:
                run = promotion(proxy.uri, big, version, expect)
                assert forker.run(run) == [0], run.stderr
                calls = list(proxy.calls)
            assert calls == PROMOTION_CALLS, calls
        else:
            code, result = call(transition, [*cli(tracking_uri, big), "--version", version, "--to", "production",
                                             "--expect-champion", expect, "--skip-card-check", "--reason", "scale"])
            assert code == 0, result
    assert aliases(client, big) == {"champion": last, "previous-champion": before}

    code, result = call(rollback, [*cli(tracking_uri, big), "--reason", "scale test"])
    assert code == 0, result
    assert aliases(client, big) == {"champion": before}

    # versions older than 30 days: v created (2,000 - v) hours before the newest, so v <= 2,000 - 720
    code, result = call(archive, [*cli(tracking_uri, big), "--keep-last", "5", "--older-than", "30", "--dry-run"])
    assert code == 0, result
    old = [str(v) for v in range(1, BIG_VERSIONS + 1)
           if scale.created_ms - (BIG_VERSIONS - v) * HOUR_MS <= time.time() * 1000 - 30 * DAY_MS]
    assert len(old) == BIG_VERSIONS - 720
    assert result["would_archive"] == old
    assert len(result["kept"]) == BIG_VERSIONS - len(old)
    assert "lifecycle.archived_at" not in client.get_model_version(big, "1").tags  # a dry run changes nothing
    events = consistent(client, tracking_uri, big)
    assert [(e["action"], e["version"]) for e in events] == [
        ("stage", before), ("promote", before), ("stage", last), ("promote", last), ("rollback", before)]


def test_listing_pages_through_versions_of_names_that_need_quoting(client, tracking_uri, scale):
    everything = {str(v) for v in range(1, VERSIONS_EACH + 1)}
    for name in scale.quoted:
        versions = registry.list_versions(client, name, page_size=7)  # 8 pages; 15 for the LIKE fallback
        assert {v.name for v in versions} == {name}, name
        assert sorted(v.version for v in versions) == sorted(everything), name
        quoted = registry.quote_filter_value(name)
        if quoted is not None:
            assert {v.name for v in client.search_model_versions(f"name = {quoted}")} == {name}
        code, result = call(status, cli(tracking_uri, name))
        assert code == 0, (name, result)
        assert {v["version"] for v in result["versions"]} == everything
    both = next(n for n in scale.quoted if "'" in n and '"' in n)
    assert registry.quote_filter_value(both) is None
    assert {v.name for v in client.search_model_versions(registry.name_filter(both))} == {both, scale.decoy}
    found, token = set(), None
    while True:  # MLflow's own paging of models (100 a page by default)
        page = client.search_registered_models(f"name LIKE '%-{scale.tag}%'", page_token=token)
        found |= {m.name for m in page}
        token = page.token
        if not token:
            break
    assert set(scale.models) <= found and scale.big in found


def test_the_relay_reconciler_sees_models_past_the_first_thousand(tmp_path, client, tracking_uri, pg_server,
                                                                  pg_cluster):
    """MLflow answers at most 1,000 registered models a page; the reconciler reads one page
    (relay_service.Relay.reconcile_once), so a version registered on a model past the first thousand
    by name is never reconciled. Fails until the reconciler pages (``page_token``)."""
    from model_lifecycle.adapters.relay_service import Relay, Settings, Store
    from model_lifecycle.edges.local_server import free_port

    tag = uuid.uuid4().hex[:6]
    template = f"aaaa-template-{tag}"
    client.create_registered_model(template)
    fillers = [f"aaaa-{tag}-{i:04d}" for i in range(1000)]  # sort before the target, by name
    assert postgres.clone_models(pg_cluster, pg_server.database, template, fillers) == 1000
    target = f"zzzz-late-{tag}"
    store = Store(tmp_path / "relay.db")
    relay = Relay(Settings(secret="s" * 40, github_repo="acme/churn", github_token="t", tracking_uri=tracking_uri),
                  store, port=free_port())
    try:
        client.create_registered_model(target)
        client.create_model_version(target, SOURCE, await_creation_for=0)
        relay.reconcile_once()  # (versions other tests made in the last seconds may be queued too)
        assert f"registered:{target}:1" in store.known_keys()
    finally:  # never started (no HTTP, no worker threads): close what its constructor opened
        relay.server.server_close()
        relay.lookup_pool.shutdown()
