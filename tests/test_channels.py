"""Notification channels: failures are warnings, writes are never repeated, bodies fit GitHub's limits."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import call
from fake_github import FakeGitHub

from model_lifecycle.adapters import channels
from model_lifecycle.api import notify as api
from model_lifecycle.edges.commands import notify

REPO = "acme/churn"
MARKER = "<!-- model-lifecycle:churn -->"
RUN_URL = "https://github.example/acme/churn/actions/runs/4242"


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch, tmp_path):
    """No setting of the machine running the tests leaks in; the job summary is a temp file."""
    for name in ("GITHUB_ACTIONS", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT",
                 "LIFECYCLE_WEBHOOK_URL", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))


@pytest.fixture()
def github(monkeypatch):
    fake = FakeGitHub().start()
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "test-token-not-secret")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    yield fake
    fake.stop()


class Hook:
    """A tiny webhook receiver answering scripted statuses (then 200), counting every request."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers, self.bodies = list(statuses), headers or {}, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                hook.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                for key, value in (hook.headers if status != 200 else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/team"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook_factory():
    hooks = []

    def make(statuses: list[int], headers: dict[str, str] | None = None) -> Hook:
        hooks.append(Hook(statuses, headers))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.stop()


def gate(*extra: str) -> list[str]:
    return ["--model", "churn", "--version", "3", "--event", "gate", *extra]


# --- the webhook ----------------------------------------------------------------------------------


def test_a_down_webhook_is_a_warning_and_is_not_retried(monkeypatch, tmp_path, capfd):
    import urllib3.util.connection

    from model_lifecycle.edges.local_server import free_port

    attempts = []
    connect = urllib3.util.connection.create_connection
    monkeypatch.setattr(urllib3.util.connection, "create_connection",
                        lambda *a, **k: attempts.append(a[0]) or connect(*a, **k))
    url = f"http://127.0.0.1:{free_port()}/hooks/secret-path"
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_URL", url)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, result = call(notify, gate())
    assert code == 0 and result["ok"] is True, result
    assert result["warnings"] == ["webhook: the notification webhook could not be reached (ConnectionError); "
                                  "nothing was posted"]
    assert result["failed"]["webhook"]["ok"] is False and result["sent"]["summary"]["ok"] is True
    assert len(attempts) == 1  # one connection attempt: nothing retried
    summary = (tmp_path / "summary.md").read_text()
    assert "Notifications not sent" in summary and "webhook: the notification webhook could not be reached" in summary
    logs = capfd.readouterr()
    assert "::warning title=Notification not sent::webhook: the notification webhook could not" in logs.err
    assert "secret-path" not in summary + logs.out + logs.err.replace(f"::add-mask::{url}", "")


def test_a_webhook_answering_500_is_not_retried(hook_factory, monkeypatch):
    hook = hook_factory([500])
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_URL", hook.url)
    code, result = call(notify, gate())
    assert code == 0, result
    assert result["warnings"] == ["webhook: the notification webhook answered HTTP 500; not retried, as it may "
                                  "have posted"]
    assert len(hook.bodies) == 1  # the POST may have been applied: never sent twice


def test_a_rate_limited_webhook_is_retried_once(hook_factory, monkeypatch):
    hook = hook_factory([429], {"Retry-After": "0"})
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_URL", hook.url)
    code, result = call(notify, gate())
    assert code == 0 and result["warnings"] == [] and result["sent"]["webhook"]["status"] == 200, result
    assert len(hook.bodies) == 2


# --- GitHub ---------------------------------------------------------------------------------------


def test_a_long_report_is_cut_to_githubs_comment_limit(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    github.pull_request(REPO, 7)
    report = tmp_path / "report.md"
    lines = ["## ❌ Gate failed: auc 0.71 < champion 0.74"]
    lines += [f"| metric {i:05d} | 0.5 | 0.5 | ok |" for i in range(3000)]
    report.write_text("\n".join(lines)[:70_000])
    assert len(report.read_text()) == 70_000
    code, result = call(notify, gate("--report", str(report), "--pr", "7"))
    assert code == 0 and result["warnings"] == [], result
    assert result["sent"]["comment"]["cut"] is True
    body = github.calls("POST", r"/repos/acme/churn/issues/7/comments")[0]["body"]["body"]
    assert len(body) <= 65_536 and len(body.encode("utf-16-le")) // 2 <= 65_536
    assert body.startswith(MARKER) and "Gate failed: auc 0.71 < champion 0.74" in body  # the head is kept
    assert "Cut here" in body and RUN_URL in body.split("Cut here")[1]
    summary = (tmp_path / "summary.md").read_text()
    assert "Cut here" not in summary and "metric 02000" in summary  # the summary (1 MiB) keeps it all


def test_the_job_summary_stays_under_1_mib(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("x" * (1024 * 1024 - 20_000))  # what earlier steps wrote
    result = api.notify(api.NotifyRequest("churn", "gate", "3", report_text="é" * 70_000))
    assert result.sent["summary"]["cut"] is True
    assert path.stat().st_size <= 1024 * 1024 and "Cut here" in path.read_text()


def test_a_comment_by_someone_else_quoting_the_marker_is_not_edited(github, tmp_path):
    github.pull_request(REPO, 7)
    quoted = {"id": 1, "body": f"> {MARKER}\n> why did this fail?", "user": {"login": "mallory"},
              "url": f"{github.url}/repos/{REPO}/issues/comments/1"}
    github.issues[REPO][7]["comments"].append(quoted)
    report = tmp_path / "report.md"
    for text in ("first verdict", "second verdict"):
        report.write_text(text)
        code, result = call(notify, gate("--report", str(report), "--pr", "7"))
        assert code == 0 and not result["warnings"], result
    comments = github.issues[REPO][7]["comments"]
    assert comments[0] == quoted  # untouched
    assert len(comments) == 2 and comments[1]["user"]["login"] == "bot" and "second verdict" in comments[1]["body"]
    assert [result["sent"]["comment"]["action"]] == ["updated"]
    assert len(github.calls("POST", r"/repos/acme/churn/issues/7/comments")) == 1
    assert [c["path"] for c in github.calls("PATCH", r".*")] == [f"/repos/{REPO}/issues/comments/{comments[1]['id']}"]


def test_the_actions_token_finds_its_own_comment_without_get_user(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_installation-token-not-secret")  # GET /user answers 403 to it
    github.pull_request(REPO, 7)
    for _ in range(2):
        code, result = call(notify, gate("--pr", "7"))
        assert code == 0 and not result["warnings"], result
    comments = github.issues[REPO][7]["comments"]
    assert [c["user"]["login"] for c in comments] == ["github-actions[bot]"]
    assert result["sent"]["comment"]["action"] == "updated"


def test_an_approval_issue_by_someone_else_is_not_reused(github):
    copied = github._issue(REPO, 1, "Approve churn?", f"{MARKER}\ncopied", ["model-approval"])
    github.issues.setdefault(REPO, {})[1] = {**copied, "user": {"login": "mallory"}}
    code, result = call(notify, ["--model", "churn", "--version", "3", "--event", "staged", "--request-approval"])
    assert code == 0 and result["sent"]["issue"]["action"] == "created", result
    assert github.issues[REPO][1]["comments"] == [] and github.issues[REPO][2]["user"]["login"] == "bot"


def test_bad_input_is_an_error_before_anything_is_sent(hook_factory, tmp_path, monkeypatch):
    hook = hook_factory([])
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_URL", hook.url)
    code, result = call(notify, gate("--pr", "7"))  # no --repo and no $GITHUB_REPOSITORY
    assert code == 2 and "a repository is needed to comment on pull request #7" in result["error"], result
    assert hook.bodies == [] and not (tmp_path / "summary.md").exists()


# --- the interface --------------------------------------------------------------------------------


def test_a_registered_channel_is_used_by_send_all(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(channels, "REGISTRY", dict(channels.REGISTRY))
    received = []

    @channels.register
    class Pager(channels.Channel):
        name = "pager"

        def enabled(self, message):
            return message.event == "refused"

        def send(self, message):
            received.append(message)
            return {"paged": "on-call"}

    @channels.register
    class Broken(channels.Channel):
        name = "broken"

        def enabled(self, message):
            return True

        def send(self, message):
            raise RuntimeError("https://hooks.example/secret")

    result = api.notify(api.NotifyRequest("churn", "refused", "3", report_text="card incomplete"))
    assert capsys.readouterr() == ("", "")  # the API never prints
    assert [m.headline for m in received] == ["Promotion refused: churn v3"]
    assert "card incomplete" in received[0].markdown
    assert result.sent["pager"] == {"ok": True, "paged": "on-call"}
    assert result.warnings == ["broken: RuntimeError"]  # the message of an unknown error is not shown: no URLs
    assert list(result.sent) == ["pager", "summary"]  # the summary goes last, with the warnings
    assert "broken: RuntimeError" in (tmp_path / "summary.md").read_text()
    code, payload = call(notify, ["--model", "churn", "--event", "gate"])
    assert code == 0 and "pager" not in payload["sent"] and set(payload) >= {"ok", "model", "event", "sent", "warnings"}


def test_fit_keeps_the_head_and_closes_an_open_fence():
    text = "## failures first\n```\n" + "line\n" * 100
    cut, was_cut = channels.fit(text, 200, RUN_URL)
    assert was_cut and len(cut) <= 200 and cut.startswith("## failures first")
    assert cut.count("```") % 2 == 0 and RUN_URL in cut
    assert channels.fit("short", 200) == ("short", False)
