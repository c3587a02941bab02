"""GitHub integration against a local stand-in for GitHub's REST API (and a real MLflow server)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from conftest import aliases, audit_events, call, record_passing_verdict
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


def test_team_reviewers_are_compared_by_type_and_id_without_the_legacy_team_endpoint(github):
    args = ["--repo", REPO, "--reviewers", "alice,acme/ml-leads", "--environments", "production"]
    code, first = call(setup_environments, args)
    assert code == 0, first
    assert first["environments"][0]["changes"]["reviewers"] == {"from": None, "to": ["acme/ml-leads", "alice"]}
    put = github.calls("PUT", r"/repos/acme/churn/environments/production")[0]["body"]
    assert put["reviewers"] == [{"type": "User", "id": 101}, {"type": "Team", "id": 201}]
    code, second = call(setup_environments, args)  # re-running reads the team back from the environment
    assert code == 0 and second["environments"][0]["changes"] == {}, second
    assert not github.calls("GET", r"/teams/\d+.*") and not github.calls("GET", r"/organizations/.*")
    # a reviewer added by hand shows as org/slug, read from the team's html_url (no organization field)
    github.protect(REPO, "production", ["alice", "acme/platform"])
    code, third = call(setup_environments, args)
    assert third["environments"][0]["changes"]["reviewers"] == {"from": ["acme/platform", "alice"],
                                                               "to": ["acme/ml-leads", "alice"]}
    assert not github.calls("GET", r"/teams/\d+.*")


def test_more_than_six_reviewers_are_refused_before_any_call(github):
    names = "alice,bob,carol,dave,erin,frank,grace"
    code, result = call(setup_environments, ["--repo", REPO, "--reviewers", names])
    assert code == 2 and "7 reviewers" in result["error"] and "at most 6" in result["error"], result
    assert github.requests == []
    code, result = call(setup_environments, ["--repo", REPO, "--reviewers", "alice,Alice,bob"])  # logins ignore case
    assert code == 0, result
    assert len(github.calls("PUT", r"/repos/acme/churn/environments/staging")[0]["body"]["reviewers"]) == 2


def test_a_wait_timer_set_by_hand_is_kept(github):
    github.protect(REPO, "production", ["alice"], wait_timer=30)
    code, result = call(setup_environments, ["--repo", REPO, "--reviewers", "alice,bob",
                                             "--environments", "production"])
    assert code == 0, result
    put = github.calls("PUT", r"/repos/acme/churn/environments/production")[0]["body"]
    assert put.get("wait_timer", 30) == 30  # sent back as it was, or not sent at all; never 0
    assert github.environments[REPO]["production"]["wait_timer"] == 30
    assert "wait_timer" not in result["environments"][0]["changes"]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Authorization": "token t",
                                                                       "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_stand_in_answers_as_github_does(github):
    """Bodies over 65,536 characters, approvals without a time, labels dropped without push access."""
    github.pull_request(REPO, 7)
    status, answer = _post(f"{github.url}/repos/{REPO}/issues/7/comments", {"body": "x" * 65_537})
    assert status == 422 and "Body is too long" in answer["errors"][0]["message"]
    assert _post(f"{github.url}/repos/{REPO}/issues/7/comments", {"body": "x" * 65_536})[0] == 201
    github.approve(REPO, "1", "production", "alice", "ok")
    assert "created_at" not in github.approvals[f"{REPO}#1"][0]
    github.read_only_tokens.add("t")
    status, issue = _post(f"{github.url}/repos/{REPO}/issues",
                          {"title": "t", "body": "b", "labels": ["model-approval"]})
    assert status == 201 and issue["labels"] == []


def test_an_approval_issue_is_found_again_when_its_label_was_dropped(github, tmp_path, monkeypatch):
    github.read_only_tokens.add("test-token-not-secret")
    for _ in range(2):
        code, result = call(notify, ["--model", "churn", "--version", "3", "--event", "staged", "--request-approval"])
        assert code == 0, result
    issues = [i for i in github.issues[REPO].values() if "pull_request" not in i]
    assert len(issues) == 1 and issues[0]["labels"] == [] and len(issues[0]["comments"]) == 1


@pytest.fixture()
def staged(client, tracking_uri, make_versions, model_name, monkeypatch):
    v1, v2 = make_versions(2)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    record_passing_verdict(client, model_name, v1)
    assert call(transition, [*base, "--version", v1, "--to", "staging"])[0] == 0
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


SHA = "0123456789abcdef0123456789abcdef01234567"


def test_promote_records_the_github_approver(client, github, staged, model_name, monkeypatch):
    """The approvals answer has no time: it comes from this run's deployment to the environment, the
    first status after the wait (queued), never from another run's deployment of the same commit."""
    base, v1 = staged
    monkeypatch.setenv("GITHUB_SHA", SHA)
    github.protect(REPO, "production", ["alice"])
    github.approve(REPO, "4242", "production", "alice", "numbers look right")
    github.deployment(REPO, "production", sha=SHA, ref="main", run_id="4242", created_at="2026-11-27T09:00:00Z",
                      statuses=[("queued", "2026-11-27T10:00:00Z"), ("in_progress", "2026-11-27T10:00:07Z")])
    github.deployment(REPO, "production", sha=SHA, ref="main", run_id="4343", created_at="2026-11-27T09:30:00Z",
                      statuses=[("queued", "2026-11-27T11:00:00Z")])  # another run of the same commit, newer
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": v1}
    event = audit_events(client, model_name)[-1]
    assert event["approver"] == "alice"
    assert event["approval"] == {"source": "github-environment", "environment": "production",
                                 "comment": "numbers look right", "time": "2026-11-27T10:00:00Z", "run_id": "4242"}
    listed = github.calls("GET", r"/repos/acme/churn/deployments")[0]["query"]
    assert "environment=production" in listed and f"sha={SHA}" in listed


def test_an_approval_time_github_does_not_give_is_recorded_as_unknown(client, github, staged, model_name,
                                                                      monkeypatch):
    base, v1 = staged
    monkeypatch.setenv("GITHUB_SHA", SHA)
    github.protect(REPO, "production", ["alice"])
    github.approve(REPO, "4242", "production", "bob", "")  # an earlier attempt's approval
    github.approve(REPO, "4242", "production", "alice", "second look")  # listed first: order is not promised
    code, result = call(transition, [*base, "--version", v1, *PROMOTE])
    assert code == 0, result
    event = audit_events(client, model_name)[-1]
    assert event["approver"] == "alice, bob" and event["approval"]["comment"] == "second look"
    assert "time" not in event["approval"]  # no deployment of this run: unknown, not invented


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


# --- a merged pull request's candidate --------------------------------------------------------------


def test_a_pull_requests_candidate_is_tagged_and_released_only_from_the_merged_head(
        github, tracking_uri, client, trained, model_name, tmp_path, monkeypatch):
    """A version registered by a pull request's run carries its number and head commit; releasing
    the merged pull request dispatches its candidate built from the merged head, as the relay's
    model-registered event; a head that never registered, an unknown pull request or a bad number
    send nothing."""
    from model_lifecycle import tags
    from model_lifecycle.edges.commands import register, release_candidate

    source = trained["logistic"].model_uri
    base = ["--tracking-uri", tracking_uri, "--model", model_name]

    def registered_under(number: int | None, head: str | None) -> str:
        if number is None:
            for key in ("GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_EVENT_PATH"):
                monkeypatch.delenv(key, raising=False)
        else:  # what GitHub Actions sets for a pull_request run
            event = tmp_path / f"event-{number}-{head}.json"
            event.write_text(json.dumps({"number": number, "pull_request": {"number": number, "head": {"sha": head}}}))
            monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
            monkeypatch.setenv("GITHUB_REF", f"refs/pull/{number}/merge")
            monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
        code, result = call(register, [*base, "--model-uri", source])
        assert code == 0, result
        return result["version"]

    v1 = registered_under(5, "a" * 40)
    v2 = registered_under(5, "b" * 40)
    v3 = registered_under(6, "c" * 40)
    v4 = registered_under(None, None)
    found = {v: client.get_model_version(model_name, v).tags for v in (v1, v2, v3, v4)}
    assert found[v2][tags.PULL_REQUEST] == "5" and found[v2][tags.PULL_REQUEST_HEAD] == "b" * 40
    assert found[v3][tags.PULL_REQUEST] == "6" and tags.PULL_REQUEST not in found[v4]
    register_event = [e for e in audit_events(client, model_name) if e["version"] == v2][0]
    assert register_event["details"]["pull_request"] == "5"
    # another pull request's training cannot pass its version off as pull request 5's candidate
    for forged in ("lifecycle.pull_request=5", f"lifecycle.pull_request.head_sha={'b' * 40}"):
        code, result = call(register, [*base, "--model-uri", source, "--tag", forged])
        assert code == 2 and "the toolkit's own" in json.dumps(result), result
    assert len(client.search_model_versions(f"name = '{model_name}'")) == 4

    code, result = call(release_candidate, [*base, "--pull-request", "5", "--head-sha", "a" * 40])
    assert code == 0 and result["version"] == v1 and result["dispatched"], result
    released = client.get_model_version(model_name, v1).tags[tags.PULL_REQUEST_RELEASED_AT]
    release_event = [e for e in audit_events(client, model_name) if e["action"] == "release"]
    assert len(release_event) == 1 and release_event[0]["time"] == released, release_event
    assert release_event[0]["version"] == v1 and release_event[0]["details"]["pull_request"] == "5"
    assert release_event[0]["details"]["head_sha"] == "a" * 40 and release_event[0]["details"]["repo"] == REPO
    # the release job re-run (any head): a pull request merges once, nothing is sent again unless asked
    for head in (["--head-sha", "a" * 40], [], ["--head-sha", "d" * 40]):
        code, result = call(release_candidate, [*base, "--pull-request", "5", *head])
        assert code == 0 and not result["dispatched"] and result["version"] == v1, result
        assert f"already released at {released}: nothing sent" in result["message"], result
    client.set_model_version_tag(model_name, v1, tags.ARCHIVED_AT, "2026-01-01T00:00:00Z")  # as retention does
    code, result = call(release_candidate, [*base, "--pull-request", "5"])  # still no superseded v2 sent
    assert code == 0 and not result["dispatched"] and "(archived since)" in result["message"], result
    assert len(github.dispatches) == 1
    code, result = call(release_candidate, [*base, "--pull-request", "5", "--again", "--reason", "lost run"])
    assert code == 0 and result["version"] == v2 and result["dispatched"], result  # the newest, once more
    again = [e for e in audit_events(client, model_name) if e["action"] == "release"][-1]
    assert again["version"] == v2 and again["details"]["again"] is True and again["reason"] == "lost run"
    assert [(d["repo"], d["event_type"], d["client_payload"]["version"], d["client_payload"]["pull_request"])
            for d in github.dispatches] == [(REPO, "model-registered", v1, "5"), (REPO, "model-registered", v2, "5")]
    assert github.dispatches[0]["client_payload"]["source"] == source

    for args, expected, message in (
            (["--pull-request", "6", "--head-sha", "d" * 40], 1, "the merged code's training did not register"),
            (["--pull-request", "9"], 1, "pull request #9 has no candidate version"),
            (["--pull-request", "five"], 2, "is not a pull request number")):
        code, result = call(release_candidate, [*base, *args])
        assert code == expected and message in json.dumps(result), result
    assert len(github.dispatches) == 2  # nothing more was sent

    github.dispatch_failures.append("403")
    code, result = call(release_candidate, [*base, "--pull-request", "6"])
    assert code == 2 and "contents: write" in json.dumps(result), result
    assert len(github.dispatches) == 2
