"""Bad input: exit 2 with one line naming what is wrong, registry unchanged. Dead server: exit 3, fast."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from conftest import aliases, audit_events, call, run_script

from model_lifecycle.edges import local_server
from model_lifecycle.edges.commands import transition


@pytest.fixture()
def staged(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    call(transition, ["--tracking-uri", tracking_uri, "--model", model_name, "--version", v1, "--to", "staging"])
    return model_name, (aliases(client, model_name), len(audit_events(client, model_name)))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "{model}-nope", "--version", "1", "--to", "staging"], "is not registered"),
        (["--model", "{model}", "--version", "99", "--to", "staging"], "has no version 99"),
        (["--model", "{model}", "--version", "abc", "--to", "staging"], "--version must be a positive version number"),
        (["--model", "{model}", "--version", "1", "--to", "heaven"], "argument --to: invalid choice: 'heaven'"),
        (["--model", "{model}", "--version", "1", "--to", "staging", "--challenger-alias", "latest"],
         "challenger alias 'latest' is reserved"),
        (["--model", "{model}", "--version", "2", "--to", "production", "--champion-alias", "V12", "--force",
          "--reason", "x"], "champion alias 'V12' is reserved"),
        (["--model", "{model}", "--version", "1", "--to", "staging", "--challenger-alias", "champion"],
         "must be three different names"),
        (["--model", "{model}", "--version", "2", "--to", "production", "--expect-champion", "x1"],
         "--expect-champion must be a positive version number"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(client, tracking_uri, staged, args, message):
    name, before = staged
    result = run_script("transition", "--tracking-uri", tracking_uri, *[a.format(model=name) for a in args])
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert (aliases(client, name), len(audit_events(client, name))) == before


def test_no_tracking_uri_is_bad_input(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_script("status", "--model", "x", env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 2 and "no tracking server given" in result.stderr


def test_github_actions_gets_an_annotation_and_a_summary(tracking_uri, tmp_path):
    summary = tmp_path / "summary.md"
    result = run_script(
        "status", "--tracking-uri", tracking_uri, "--model", "does-not-exist",
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 2
    assert "::error title=Bad input::model 'does-not-exist' is not registered" in result.stdout
    assert "model 'does-not-exist' is not registered" in summary.read_text()


def test_unreachable_server_exits_3_within_bounded_time():
    port = local_server.free_port()  # nothing listens there
    started = time.monotonic()
    result = run_script("status", "--tracking-uri", f"http://127.0.0.1:{port}", "--model", "m")
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert "tracking server" in result.stderr
    assert elapsed < 30


class _Always500(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        self.send_response(503)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"upstream down")

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


def test_server_answering_5xx_exits_3_within_bounded_time_and_promotes_nothing():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always500)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = run_script(
            "transition", "--tracking-uri", f"http://127.0.0.1:{httpd.server_address[1]}",
            "--model", "m", "--version", "1", "--to", "production",
        )
        elapsed = time.monotonic() - started
    finally:
        httpd.shutdown()
    assert result.returncode == 3, result.stderr
    assert elapsed < 30
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
