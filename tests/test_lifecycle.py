"""The lifecycle core against a real MLflow server, read back with a plain MlflowClient."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from conftest import aliases, audit_events, both_backends, call, record_passing_verdict, run_script

from model_lifecycle.edges.commands import rollback
from model_lifecycle.edges.commands import status
from model_lifecycle.edges.commands import transition


# The lifecycle, lock, audit, race and crash tests run on both backends (@both_backends): the sqlite
# server, and PostgreSQL with 4 server workers (tests/postgres.py). The others run on sqlite.
@pytest.fixture()
def tracking_uri(tracking_uri, backend_uri):
    return backend_uri


@pytest.fixture()
def trained(trained, backend, request):
    return request.getfixturevalue("pg_trained") if backend == "postgresql" else trained


def uri_args(tracking_uri: str, name: str) -> list[str]:
    return ["--tracking-uri", tracking_uri, "--model", name]


def open_claims(client, name: str) -> list[str]:
    """Names of the model's claims that are not complete (a complete claim is a deleted experiment)."""
    found = client.search_experiments(filter_string=f"name LIKE 'model-lifecycle-claims/{name}/%'")
    return sorted(e.name for e in found)


# Model cards have their own tests (test_cards.py); here production skips the card gate, as recorded.
SKIP_CARD = ["--skip-card-check"]


def to(tracking_uri, name, version, target, *extra):
    extra = list(extra)
    if target == "production":
        extra += SKIP_CARD + ([] if "--reason" in extra else ["--reason", "lifecycle test"])
    return call(transition, [*uri_args(tracking_uri, name), "--version", version, "--to", target, *extra])


def staged(client, tracking_uri, name, version, *extra):
    """Stage a version the gate passed against the current champion: these tests are not about the
    gate (test_gate.py is), and staging and production refuse a version without a verdict."""
    record_passing_verdict(client, name, version)
    return to(tracking_uri, name, version, "staging", *extra)


@both_backends
def test_register_tags_lineage_and_records_the_event(client, trained, make_versions, model_name):
    (v1,) = make_versions(1)
    mv = client.get_model_version(model_name, v1)
    assert mv.tags["lifecycle.training_run_id"] == trained["logistic"].run_id
    assert mv.tags["lifecycle.dataset.holdout.sha256"] == trained["logistic"].datasets["holdout"]
    assert mv.tags["lifecycle.dataset.train.sha256"] == trained["logistic"].datasets["train"]
    assert mv.tags["lifecycle.dataset.train.rows"] == "398"
    events = audit_events(client, model_name)
    assert [(e["action"], e["version"]) for e in events] == [("register", v1)]


@both_backends
def test_stage_then_promote_serves_the_champion(client, tracking_uri, trained, make_versions, model_name):
    v1, v2 = make_versions(2)
    assert staged(client, tracking_uri, model_name, v1, "--reason", "gate passed")[0] == 0
    assert aliases(client, model_name) == {"challenger": v1}
    code, result = to(
        tracking_uri, model_name, v1, "production", "--expect-champion", "none",
        "--approver", "alice", "--approval-source", "github-environment", "--approval-comment", "LGTM",
    )
    assert code == 0 and result["changed"]
    assert aliases(client, model_name) == {"champion": v1}
    promote = audit_events(client, model_name)[-1]
    assert promote["action"] == "promote" and promote["version"] == v1 and "previous_version" not in promote
    assert promote["approver"] == "alice"
    assert promote["approval"] == {"source": "github-environment", "comment": "LGTM"}
    assert promote["details"]["card_check"] == "skipped" and promote["reason"] == "lifecycle test"

    import mlflow

    holdout = pd.read_csv(trained["logistic"].holdout_path)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    assert len(model.predict(holdout.drop(columns=["target", "size_band"]))) == len(holdout)

    # second promotion keeps the old champion reachable for rollback
    assert staged(client, tracking_uri, model_name, v2)[0] == 0
    assert to(tracking_uri, model_name, v2, "production", "--expect-champion", v1)[0] == 0
    assert aliases(client, model_name) == {"champion": v2, "previous-champion": v1}
    assert audit_events(client, model_name)[-1]["previous_version"] == v1


@both_backends
def test_promotion_is_compare_and_set(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    staged(client, tracking_uri, model_name, v2)
    before = (aliases(client, model_name), len(audit_events(client, model_name)))
    code, result = to(tracking_uri, model_name, v2, "production", "--expect-champion", "none")
    assert code == 1
    assert "moved since you looked" in result["error"] and "nothing was changed" in result["error"]
    assert (aliases(client, model_name), len(audit_events(client, model_name))) == before


def test_promoting_a_non_challenger_needs_force_with_a_reason(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    code, result = to(tracking_uri, model_name, v2, "production")
    assert code == 1 and "is not @challenger" in result["error"]
    code, result = call(transition, [*uri_args(tracking_uri, model_name), "--version", v2, "--to", "production",
                                     "--force"])
    assert code == 2 and "--force needs --reason" in result["error"]
    assert aliases(client, model_name) == {"challenger": v1}
    code, _ = to(tracking_uri, model_name, v2, "production", "--force", "--reason", "hotfix")
    assert code == 0
    assert aliases(client, model_name) == {"challenger": v1, "champion": v2}
    event = audit_events(client, model_name)[-1]
    assert event["details"]["forced"] is True and event["reason"] == "hotfix"


@both_backends
def test_promote_race_exactly_one_wins(client, tracking_uri, make_versions, model_name):
    """Three promoters with the same --expect-champion start together: one wins, two get exit 1."""
    from mlflow import MlflowClient

    from model_lifecycle.core import lifecycle
    from model_lifecycle.errors import Refused

    v1, v2, v3, v4 = make_versions(4)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    barrier = threading.Barrier(3)
    outcomes: dict[str, str] = {}

    def promote(version: str) -> None:
        own = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        barrier.wait()
        try:
            lifecycle.promote(own, model_name, version, lifecycle.AliasNames(), expect_champion=v1,
                              force=True, reason="race")
            outcomes[version] = "won"
        except Refused:
            outcomes[version] = "refused"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (v2, v3, v4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes.values()) == ["refused", "refused", "won"]
    winner = next(v for v, o in outcomes.items() if o == "won")
    assert aliases(client, model_name)["champion"] == winner
    promotions = [e for e in audit_events(client, model_name) if e["action"] == "promote"]
    assert [(e["version"], e.get("previous_version")) for e in promotions] == [(v1, None), (winner, v1)]
    assert client.search_registered_models(f"name = '{model_name}.lifecycle-lock'") == []


@both_backends
def test_promote_race_between_processes(client, tracking_uri, make_versions, model_name):
    import subprocess
    import sys

    from conftest import REPO

    v1, v2, v3 = make_versions(3)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "scripts/transition.py"), *uri_args(tracking_uri, model_name),
             "--version", v, "--to", "production", "--expect-champion", v1, "--force", "--reason", "race",
             *SKIP_CARD],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for v in (v2, v3)
    ]
    codes = sorted(p.wait(120) for p in procs)
    assert codes == [0, 1]
    assert len([e for e in audit_events(client, model_name) if e["action"] == "promote"]) == 2


@both_backends
def test_crash_after_commit_is_finished_by_rerunning(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    staged(client, tracking_uri, model_name, v2)
    args = [*uri_args(tracking_uri, model_name), "--version", v2, "--to", "production", "--expect-champion", v1,
            *SKIP_CARD, "--reason", "crash test"]
    crashed = run_script("transition", *args, env={"LIFECYCLE_FAILPOINT": "after-commit"})
    assert crashed.returncode == 70
    # the commit (alias move) happened, the rest did not: the claim still holds the intent
    assert aliases(client, model_name) == {"champion": v2, "challenger": v2}
    assert [e["action"] for e in audit_events(client, model_name)].count("promote") == 1
    assert len(open_claims(client, model_name)) == 1

    rerun = run_script("transition", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert aliases(client, model_name) == {"champion": v2, "previous-champion": v1}
    promotions = [e for e in audit_events(client, model_name) if e["action"] == "promote"]
    assert [(e["version"], e.get("previous_version")) for e in promotions] == [(v1, None), (v2, v1)]
    assert client.search_registered_models(f"name = '{model_name}.lifecycle-lock'") == []
    assert open_claims(client, model_name) == []


@both_backends
def test_rollback_after_two_promotions_goes_to_the_recorded_previous(client, tracking_uri, make_versions, model_name):
    v1, v2, v3 = make_versions(3)
    # v2 is never champion: rollback must return to v1, not "version minus one"
    for v in (v1, v3):
        staged(client, tracking_uri, model_name, v)
        to(tracking_uri, model_name, v, "production")
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "latency regression"])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": v1}
    assert client.get_model_version_by_alias(model_name, "champion").version == v1
    event = audit_events(client, model_name)[-1]
    assert (event["action"], event["version"], event["previous_version"], event["reason"]) == (
        "rollback", v1, v3, "latency regression")
    # nothing earlier than v1: a second rollback refuses cleanly and changes nothing
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "again"])
    assert code == 2 and "no previous champion" in result["error"]
    assert aliases(client, model_name) == {"champion": v1}


def test_rollback_without_any_promotion_refuses(client, tracking_uri, make_versions, model_name):
    make_versions(1)
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "x"])
    assert code == 2 and "nothing to roll back to" in result["error"]
    assert aliases(client, model_name) == {}


@both_backends
def test_archive_marks_and_unaliases_but_never_the_champion(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    staged(client, tracking_uri, model_name, v2)
    code, result = to(tracking_uri, model_name, v1, "archived")
    assert code == 2 and "cannot be archived" in result["error"]
    code, _ = to(tracking_uri, model_name, v2, "archived", "--reason", "superseded", "--legacy-stages")
    assert code == 0
    mv = client.get_model_version(model_name, v2)
    assert "lifecycle.archived_at" in mv.tags and mv.tags["lifecycle.archive_reason"] == "superseded"
    assert mv.current_stage == "Archived"
    assert aliases(client, model_name) == {"champion": v1}


def test_legacy_stages_mirror(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    for v in (v1, v2):
        staged(client, tracking_uri, model_name, v, "--legacy-stages")
        to(tracking_uri, model_name, v, "production", "--legacy-stages")
    stages = {v: client.get_model_version(model_name, v).current_stage for v in (v1, v2)}
    assert stages == {v1: "Archived", v2: "Production"}


def test_status_at_answers_who_was_champion(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    time.sleep(0.05)
    between = int(time.time() * 1000)
    time.sleep(0.05)
    staged(client, tracking_uri, model_name, v2)
    to(tracking_uri, model_name, v2, "production")
    promote_v1 = next(e for e in audit_events(client, model_name) if e["action"] == "promote")
    cases = {promote_v1["epoch_ms"] - 1: None, between: v1, int(time.time() * 1000): v2}
    for moment, expected in cases.items():
        code, result = call(status, [*uri_args(tracking_uri, model_name), "--at", str(moment)])
        assert code == 0 and result["at"]["champion"] == expected
    code, result = call(status, [*uri_args(tracking_uri, model_name), "--audit"])
    states = {v["version"]: v["state"] for v in result["versions"]}
    assert states == {v1: "previous-champion", v2: "champion"}
    assert [e["action"] for e in result["audit"]] == ["register", "register", "stage", "promote", "stage", "promote"]
    assert "drift" not in result


def test_status_reports_an_alias_moved_outside_the_toolkit(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    client.set_registered_model_alias(model_name, "champion", v2)
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert code == 0 and "outside the toolkit" in result["drift"]
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "x"])
    assert code == 1 and "moved outside the toolkit" in result["error"]


@both_backends
def test_concurrent_audit_writers_lose_nothing(client, tracking_uri, make_versions, model_name):
    from mlflow import MlflowClient

    from model_lifecycle.core import audit

    make_versions(1)
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        own = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        model = own.get_registered_model(model_name)
        barrier.wait()
        for j in range(3):
            audit.append(own, model, audit.new_event("note", model_name, "1", reason=f"{i}-{j}"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    notes = sorted(e["reason"] for e in audit_events(client, model_name) if e["action"] == "note")
    assert notes == sorted(f"{i}-{j}" for i in range(8) for j in range(3))


def test_long_non_ascii_reason_keeps_the_audit_record_readable(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    code, _ = to(tracking_uri, model_name, v1, "production", "--reason", "理由" * 2000)
    assert code == 0
    event = audit_events(client, model_name)[-1]
    assert event["action"] == "promote" and event["reason"].startswith("理由") and event["reason"].endswith("...")
    staged(client, tracking_uri, model_name, v2)
    before = aliases(client, model_name)
    code, result = to(tracking_uri, model_name, v2, "production", "--approver", "x" * 9000)
    assert code == 2 and "too large" in result["error"]
    assert aliases(client, model_name) == before
    assert call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "r"])[0] == 2  # only one champion


@both_backends
def test_status_reports_a_half_done_change_not_an_outside_one(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    staged(client, tracking_uri, model_name, v2)
    args = [*uri_args(tracking_uri, model_name), "--version", v2, "--to", "production", "--expect-champion", v1,
            *SKIP_CARD, "--reason", "crash test"]
    assert run_script("transition", *args, env={"LIFECYCLE_FAILPOINT": "after-commit"}).returncode == 70
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert code == 0
    assert result["pending"]["action"] == "promote" and result["pending"]["version"] == v2
    assert result["pending"]["committed"] is True and result["pending"]["holder_gone"] is True
    assert "half-done" in result["drift"] and "outside the toolkit" not in result["drift"]
    assert run_script("transition", *args).returncode == 0
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert "pending" not in result and "drift" not in result


def test_rollback_returns_to_a_champion_set_before_the_toolkit(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    client.set_registered_model_alias(model_name, "champion", v1)  # the team's champion, before the toolkit
    staged(client, tracking_uri, model_name, v2)
    assert to(tracking_uri, model_name, v2, "production", "--expect-champion", v1)[0] == 0
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "adopted champion was better"])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": v1}
    event = audit_events(client, model_name)[-1]
    assert (event["action"], event["version"], event["previous_version"]) == ("rollback", v1, v2)
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "again"])
    assert code == 2 and "no previous champion" in result["error"]


def test_promoting_the_champion_again_is_a_noop_before_any_gate(client, tracking_uri, make_versions, model_name):
    """The card gate (``gate=``) runs only when the champion is going to change."""
    from mlflow import MlflowClient

    from model_lifecycle.core import lifecycle
    from model_lifecycle.errors import Refused

    v1, v2 = make_versions(2)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    own = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    calls = []

    def card_gate(mv):
        calls.append(str(mv.version))
        raise Refused("the model card is not ready")

    again = lifecycle.promote(own, model_name, v1, lifecycle.AliasNames(), expect_champion=v1, gate=card_gate)
    assert again.changed is False and calls == []
    staged(client, tracking_uri, model_name, v2)
    try:
        lifecycle.promote(own, model_name, v2, lifecycle.AliasNames(), expect_champion=v1, gate=card_gate)
        raise AssertionError("the gate should have refused")
    except Refused:
        pass
    assert calls == [v2] and aliases(client, model_name)["champion"] == v1


@both_backends
def test_late_write_of_an_abandoned_change_is_reported_and_repaired(client, tracking_uri, make_versions, model_name):
    from mlflow import MlflowClient

    from model_lifecycle.core import lifecycle

    v1, v2, v3 = make_versions(3)
    staged(client, tracking_uri, model_name, v1)
    to(tracking_uri, model_name, v1, "production")
    staged(client, tracking_uri, model_name, v2)
    args = [*uri_args(tracking_uri, model_name), "--version", v2, "--to", "production", "--expect-champion", v1,
            *SKIP_CARD, "--reason", "dies before its commit"]
    assert run_script("transition", *args, env={"LIFECYCLE_FAILPOINT": "after-claim"}).returncode == 70
    assert staged(client, tracking_uri, model_name, v3)[0] == 0  # takes the dead change over: abandoned
    abandoned = [e for e in audit_events(client, model_name) if e["action"] == "abandon"]
    assert len(abandoned) == 1 and abandoned[0]["details"]["commit"]["version"] == v2
    # the dead promotion's alias write, in flight all along, reaches the server now
    client.set_registered_model_alias(model_name, "champion", v2)
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert "late write of change" in result["drift"] and "outside the toolkit" not in result["drift"]
    own = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    fixed = lifecycle.repair(own, model_name, lifecycle.AliasNames())
    assert fixed.changed and aliases(client, model_name) == {"champion": v1, "challenger": v3}
    assert audit_events(client, model_name)[-1]["action"] == "repair"
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert "drift" not in result
    assert lifecycle.repair(own, model_name, lifecycle.AliasNames()).changed is False


def test_a_version_without_a_gate_verdict_needs_force_for_staging_and_production(client, tracking_uri, make_versions,
                                                                                  model_name):
    """Issue 10: a version that never went through the gate must not reach production with two plain
    transitions. Refused (exit 1, nothing changed) for each, unless forced with a reason, recorded."""
    from mlflow import MlflowClient

    plain = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def registry_state():
        model = plain.get_registered_model(model_name)
        return ({a: str(v) for a, v in model.aliases.items()}, plain.get_model_version(model_name, v1).tags,
                len(audit_events(plain, model_name)))

    (v1,) = make_versions(1)
    before = registry_state()
    code, result = to(tracking_uri, model_name, v1, "staging", "--reason", "no gate")
    assert code == 1, result
    assert f"version {v1} of {model_name!r} cannot go to staging: it has no gate verdict" in result["error"]
    assert "nothing was changed" in result["error"]
    assert registry_state() == before

    code, result = to(tracking_uri, model_name, v1, "staging", "--force", "--reason", "hotfix, gate skipped")
    assert code == 0, result
    assert aliases(plain, model_name) == {"challenger": v1}
    event = audit_events(plain, model_name)[-1]
    assert (event["action"], event["version"], event["reason"]) == ("stage", v1, "hotfix, gate skipped")
    assert event["details"] == {"forced": True, "verdict": "missing"}

    # @challenger now (forced), still no verdict: production refuses it the same way
    before = registry_state()
    code, result = to(tracking_uri, model_name, v1, "production", "--expect-champion", "none")
    assert code == 1, result
    assert f"version {v1} of {model_name!r} cannot go to production: it has no gate verdict" in result["error"]
    assert "nothing was changed" in result["error"]
    assert registry_state() == before

    code, result = to(tracking_uri, model_name, v1, "production", "--expect-champion", "none", "--force",
                      "--reason", "incident 42: the gate's store is down")
    assert code == 0 and result["changed"], result
    assert aliases(plain, model_name) == {"champion": v1}
    event = audit_events(plain, model_name)[-1]
    assert (event["action"], event["version"]) == ("promote", v1)
    assert event["reason"] == "incident 42: the gate's store is down"
    assert event["details"]["forced"] is True and event["details"]["verdict"] == "missing"


def test_a_passing_verdict_is_recorded_and_one_against_another_champion_is_refused(client, tracking_uri,
                                                                                   make_versions, model_name):
    v1, v2 = make_versions(2)
    assert staged(client, tracking_uri, model_name, v1)[0] == 0
    assert to(tracking_uri, model_name, v1, "production", "--expect-champion", "none")[0] == 0
    promote = audit_events(client, model_name)[-1]
    assert promote["details"]["verdict"] == "passed" and promote["details"]["forced"] is False
    assert promote["evidence"]["verdict"] == client.get_model_version(model_name, v1).tags["lifecycle.verdict.sha256"]
    # v2's verdict compared it with no champion; the champion is v1 now: stale
    record_passing_verdict(client, model_name, v2, None)
    before = (aliases(client, model_name), len(audit_events(client, model_name)))
    code, result = to(tracking_uri, model_name, v2, "staging")
    assert code == 1 and "compared it with no champion, but the champion is v1 now" in result["error"], result
    assert (aliases(client, model_name), len(audit_events(client, model_name))) == before


def test_the_audit_record_of_a_model_is_read_by_its_name_whatever_it_holds(client):
    """Each model's audit events come back from its own run only, found with a filter on the model's
    name (a name with both quote characters, which has no literal in MLflow's grammar, is compared
    after reading); names that differ by a quote or a backslash never share events."""
    import uuid

    from model_lifecycle.core import audit

    tag = uuid.uuid4().hex[:6]
    names = [f"it's-{tag}", f'say "hi"-{tag}', f"back\\slash-{tag}", f"both'\"\\-{tag}", f"both_\"_-{tag}",
             f"plain-{tag}"]
    for name in names:
        model = client.create_registered_model(name)
        audit.append(client, model, {"action": "note", "model": name, "epoch_ms": 1, "id": uuid.uuid4().hex})
    for name in names:
        events = audit.read(client, name)
        assert [e["model"] for e in events] == [name], (name, events)
