"""GitHub integration against a local stand-in for GitHub's REST API (and a real MLflow server)."""

from __future__ import annotations

import pytest
from conftest import aliases, audit_events, call
from fake_github import FakeGitHub

from model_lifecycle.edges.commands import notify
from model_lifecycle.edges.commands import setup_environments
from model_lifecycle.edges.commands import transition

REPO = "acme/churn"


@pytest.fixture()
def github(monkeypatch):
    fake = FakeGitHub().start()
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "test-token-not-secret")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    yield fake
    fake.stop()


def test_sticky_pr_comment_is_updated_not_duplicated(github, tmp_path):
    github.pull_request(REPO, 7)
    report = tmp_path / "report.md"
    for text in ("first verdict", "second verdict"):
        report.write_text(text)
        code, result = call(notify, ["--model", "churn", "--version", "3", "--event", "gate", "--report", str(report),
                                     "--pr", "7"])
        assert code == 0, result
    comments = github.issues[REPO][7]["comments"]
    assert len(comments) == 1 and "second verdict" in comments[0]["body"]
    assert "<!-- model-lifecycle:churn -->" in comments[0]["body"]
    assert len(github.calls("POST", r"/repos/acme/churn/issues/7/comments")) == 1
    assert len(github.calls("PATCH", r"/repos/acme/churn/issues/comments/\d+")) == 1
    assert all(r["auth"] for r in github.requests)


def test_approval_request_issue_and_webhook(github, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_URL", f"{github.url}/hooks/team")
    (tmp_path / "r.md").write_text("gate passed")
    for _ in range(2):
        code, result = call(notify, ["--model", "churn", "--version", "3", "--event", "staged", "--report",
                                     str(tmp_path / "r.md"), "--request-approval"])
        assert code == 0 and result["sent"]["webhook"]
    issues = list(github.issues[REPO].values())
    assert len(issues) == 1 and issues[0]["title"] == "Approve churn v3 for production"
    assert len(issues[0]["comments"]) == 1  # the second request comments on the open issue
    assert [w["body"]["text"].splitlines()[0] for w in github.webhooks] == [
        "### Staged as @challenger: approval requested: churn v3"] * 2


def test_setup_environments_is_idempotent(github):
    args = ["--repo", REPO, "--reviewers", "alice,bob"]
    code, first = call(setup_environments, args)
    assert code == 0
    assert [e["existed"] for e in first["environments"]] == [False, False]
    assert first["environments"][1]["changes"]["reviewers"] == {"from": None, "to": ["alice", "bob"]}
    put = github.calls("PUT", r"/repos/acme/churn/environments/production")[0]["body"]
    assert put["prevent_self_review"] is True and put["deployment_branch_policy"]["protected_branches"] is True
    assert sorted(r["id"] for r in put["reviewers"]) == [101, 102]
    code, second = call(setup_environments, args)
    assert code == 0 and [e["changes"] for e in second["environments"]] == [{}, {}]
    code, result = call(setup_environments, ["--repo", REPO, "--reviewers", "mallory"])
    assert code == 2 and "reviewer 'mallory' not found" in result["error"]


@pytest.fixture()
def staged(client, tracking_uri, make_versions, model_name, monkeypatch):
    v1, v2 = make_versions(2)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    call(transition, [*base, "--version", v1, "--to", "staging"])
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    return base, v1


PROMOTE = ["--to", "production", "--expect-champion", "none", "--github-approval", "production",
           "--skip-card-check", "--reason", "approval tests"]


def test_promote_without_a_recorded_approval_refuses(client, github, staged, model_name):
    base, v1 = staged
    github.protect(REPO, "production", ["alice"])
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 1 and "no approval of run 4242" in result["error"]
    assert aliases(client, model_name) == {"challenger": v1}
    assert github.calls("GET", r"/repos/acme/churn/actions/runs/4242/approvals")


def test_promote_records_the_github_approver(client, github, staged, model_name):
    base, v1 = staged
    github.protect(REPO, "production", ["alice"])
    github.approve(REPO, "4242", "production", "alice", "numbers look right")
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": v1}
    event = audit_events(client, model_name)[-1]
    assert event["approver"] == "alice"
    assert event["approval"] == {"source": "github-environment", "environment": "production",
                                 "comment": "numbers look right", "time": "2026-11-27T10:00:00Z", "run_id": "4242"}


def test_unprotected_environment_refuses_unless_explicitly_allowed(client, github, staged, model_name):
    base, v1 = staged
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 1 and "has no required reviewers" in result["error"]
    assert aliases(client, model_name) == {"challenger": v1}
    code, result = call(transition, [*base, "--version", v1, *PROMOTE, "--allow-unprotected-environment"])
    assert code == 0, result
    assert "require-approval: false" in audit_events(client, model_name)[-1]["approval"]["comment"]


def test_github_down_is_exit_3(staged, monkeypatch):
    from model_lifecycle.edges.local_server import free_port

    base, v1 = staged
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 3 and "GitHub API at http://127.0.0.1" in result["error"], result
