"""Retention against a real server: the dry run changes nothing; the real run keeps what it must."""

from __future__ import annotations

from conftest import aliases, audit_events, call, record_passing_verdict

from model_lifecycle.edges.commands import archive
from model_lifecycle.edges.commands import transition


def test_retention_dry_run_then_archive(client, tracking_uri, make_versions, model_name):
    versions = make_versions(6)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    v1, v2, v3, v4, v5, v6 = versions
    for v in (v2, v4):  # v2 then v4 champion: v2 becomes @previous-champion
        record_passing_verdict(client, model_name, v)
        call(transition, [*base, "--version", v, "--to", "staging"])
        call(transition, [*base, "--version", v, "--to", "production", "--skip-card-check", "--reason", "retention test"])
    record_passing_verdict(client, model_name, v3)
    call(transition, [*base, "--version", v3, "--to", "staging"])  # v3 is the challenger
    before = {v: client.get_model_version(model_name, v).tags for v in versions}

    code, plan = call(archive, [*base, "--keep-last", "1", "--older-than", "0", "--dry-run"])
    assert code == 0
    assert plan["would_archive"] == [v1, v5]
    assert plan["kept"] == {v2: "@previous champion", v3: "@challenger", v4: "@champion", v6: "one of the newest 1"}
    assert {v: client.get_model_version(model_name, v).tags for v in versions} == before

    code, done = call(archive, [*base, "--keep-last", "1", "--older-than", "0", "--reason", "tidy"])
    assert code == 0 and done["archived"] == [v1, v5]
    archived = {v for v in versions if "lifecycle.archived_at" in client.get_model_version(model_name, v).tags}
    assert archived == {v1, v5}
    assert aliases(client, model_name) == {"champion": v4, "previous-champion": v2, "challenger": v3}
    # archived, never deleted
    assert sorted(mv.version for mv in client.search_model_versions(f"name = '{model_name}'")) == sorted(versions)
    assert [e["version"] for e in audit_events(client, model_name) if e["action"] == "archive"] == [v1, v5]

    # a second run has nothing left to do
    code, again = call(archive, [*base, "--keep-last", "1", "--older-than", "0"])
    assert code == 0 and again["archived"] == []


def test_retention_window_keeps_recent_champions_and_young_versions(client, tracking_uri, make_versions, model_name):
    v1, v2, v3 = make_versions(3)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    for v in (v1, v2, v3):
        record_passing_verdict(client, model_name, v)
        call(transition, [*base, "--version", v, "--to", "staging"])
        call(transition, [*base, "--version", v, "--to", "production", "--skip-card-check", "--reason", "retention test"])
    code, plan = call(archive, [*base, "--keep-last", "0", "--older-than", "30", "--dry-run"])
    assert code == 0 and plan["would_archive"] == []
    assert plan["kept"][v1] == "was champion within the last 30 days"
