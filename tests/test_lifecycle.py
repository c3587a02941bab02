"""The lifecycle core against a real MLflow server, read back with a plain MlflowClient."""

from __future__ import annotations

import threading
import time

import pandas as pd
from conftest import aliases, audit_events, call, run_script

from model_lifecycle.edges.commands import rollback
from model_lifecycle.edges.commands import status
from model_lifecycle.edges.commands import transition


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


def test_register_tags_lineage_and_records_the_event(client, trained, make_versions, model_name):
    (v1,) = make_versions(1)
    mv = client.get_model_version(model_name, v1)
    assert mv.tags["lifecycle.training_run_id"] == trained["logistic"].run_id
    assert mv.tags["lifecycle.dataset.holdout.sha256"] == trained["logistic"].datasets["holdout"]
    assert mv.tags["lifecycle.dataset.train.sha256"] == trained["logistic"].datasets["train"]
    assert mv.tags["lifecycle.dataset.train.rows"] == "398"
    events = audit_events(client, model_name)
    assert [(e["action"], e["version"]) for e in events] == [("register", v1)]


def test_stage_then_promote_serves_the_champion(client, tracking_uri, trained, make_versions, model_name):
    v1, v2 = make_versions(2)
    assert to(tracking_uri, model_name, v1, "staging", "--reason", "gate passed")[0] == 0
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
    assert to(tracking_uri, model_name, v2, "staging")[0] == 0
    assert to(tracking_uri, model_name, v2, "production", "--expect-champion", v1)[0] == 0
    assert aliases(client, model_name) == {"champion": v2, "previous-champion": v1}
    assert audit_events(client, model_name)[-1]["previous_version"] == v1


def test_promotion_is_compare_and_set(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    to(tracking_uri, model_name, v2, "staging")
    before = (aliases(client, model_name), len(audit_events(client, model_name)))
    code, result = to(tracking_uri, model_name, v2, "production", "--expect-champion", "none")
    assert code == 1
    assert "moved since you looked" in result["error"] and "nothing was changed" in result["error"]
    assert (aliases(client, model_name), len(audit_events(client, model_name))) == before


def test_promoting_a_non_challenger_needs_force_with_a_reason(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
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


def test_promote_race_exactly_one_wins(client, tracking_uri, make_versions, model_name):
    """Three promoters with the same --expect-champion start together: one wins, two get exit 1."""
    from mlflow import MlflowClient

    from model_lifecycle.core import lifecycle
    from model_lifecycle.errors import Refused

    v1, v2, v3, v4 = make_versions(4)
    to(tracking_uri, model_name, v1, "staging")
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


def test_promote_race_between_processes(client, tracking_uri, make_versions, model_name):
    import subprocess
    import sys

    from conftest import REPO

    v1, v2, v3 = make_versions(3)
    to(tracking_uri, model_name, v1, "staging")
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


def test_crash_after_commit_is_finished_by_rerunning(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    to(tracking_uri, model_name, v2, "staging")
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


def test_rollback_after_two_promotions_goes_to_the_recorded_previous(client, tracking_uri, make_versions, model_name):
    v1, v2, v3 = make_versions(3)
    # v2 is never champion: rollback must return to v1, not "version minus one"
    for v in (v1, v3):
        to(tracking_uri, model_name, v, "staging")
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


def test_archive_marks_and_unaliases_but_never_the_champion(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    to(tracking_uri, model_name, v2, "staging")
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
        to(tracking_uri, model_name, v, "staging", "--legacy-stages")
        to(tracking_uri, model_name, v, "production", "--legacy-stages")
    stages = {v: client.get_model_version(model_name, v).current_stage for v in (v1, v2)}
    assert stages == {v1: "Archived", v2: "Production"}


def test_status_at_answers_who_was_champion(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    time.sleep(0.05)
    between = int(time.time() * 1000)
    time.sleep(0.05)
    to(tracking_uri, model_name, v2, "staging")
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
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    client.set_registered_model_alias(model_name, "champion", v2)
    code, result = call(status, uri_args(tracking_uri, model_name))
    assert code == 0 and "outside the toolkit" in result["drift"]
    code, result = call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "x"])
    assert code == 1 and "moved outside the toolkit" in result["error"]


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
    to(tracking_uri, model_name, v1, "staging")
    code, _ = to(tracking_uri, model_name, v1, "production", "--reason", "理由" * 2000)
    assert code == 0
    event = audit_events(client, model_name)[-1]
    assert event["action"] == "promote" and event["reason"].startswith("理由") and event["reason"].endswith("...")
    to(tracking_uri, model_name, v2, "staging")
    before = aliases(client, model_name)
    code, result = to(tracking_uri, model_name, v2, "production", "--approver", "x" * 9000)
    assert code == 2 and "too large" in result["error"]
    assert aliases(client, model_name) == before
    assert call(rollback, [*uri_args(tracking_uri, model_name), "--reason", "r"])[0] == 2  # only one champion


def test_status_reports_a_half_done_change_not_an_outside_one(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    to(tracking_uri, model_name, v2, "staging")
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
    to(tracking_uri, model_name, v2, "staging")
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
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    own = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    calls = []

    def card_gate():
        calls.append(1)
        raise Refused("the model card is not ready")

    again = lifecycle.promote(own, model_name, v1, lifecycle.AliasNames(), expect_champion=v1, gate=card_gate)
    assert again.changed is False and calls == []
    to(tracking_uri, model_name, v2, "staging")
    try:
        lifecycle.promote(own, model_name, v2, lifecycle.AliasNames(), expect_champion=v1, gate=card_gate)
        raise AssertionError("the gate should have refused")
    except Refused:
        pass
    assert calls == [1] and aliases(client, model_name)["champion"] == v1


def test_late_write_of_an_abandoned_change_is_reported_and_repaired(client, tracking_uri, make_versions, model_name):
    from mlflow import MlflowClient

    from model_lifecycle.core import lifecycle

    v1, v2, v3 = make_versions(3)
    to(tracking_uri, model_name, v1, "staging")
    to(tracking_uri, model_name, v1, "production")
    to(tracking_uri, model_name, v2, "staging")
    args = [*uri_args(tracking_uri, model_name), "--version", v2, "--to", "production", "--expect-champion", v1,
            *SKIP_CARD, "--reason", "dies before its commit"]
    assert run_script("transition", *args, env={"LIFECYCLE_FAILPOINT": "after-claim"}).returncode == 70
    assert to(tracking_uri, model_name, v3, "staging")[0] == 0  # takes the dead change over: abandoned
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
