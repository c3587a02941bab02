"""Bad input: exit 2 with one line naming what is wrong, registry unchanged. Dead server: exit 3, fast."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO, aliases, audit_events, call, record_passing_verdict, run_script

from model_lifecycle.edges import local_server
from model_lifecycle.edges.commands import transition


@pytest.fixture()
def staged(client, tracking_uri, make_versions, model_name):
    v1, v2 = make_versions(2)
    record_passing_verdict(client, model_name, v1)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    assert call(transition, [*base, "--version", v1, "--to", "staging"])[0] == 0
    return model_name, (aliases(client, model_name), len(audit_events(client, model_name)))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "{model}-nope", "--version", "1", "--to", "staging"], "is not registered"),
        (["--model", "{model}", "--version", "99", "--to", "staging"], "has no version 99"),
        (["--model", "{model}", "--version", "abc", "--to", "staging"],
         "argument --version: must be a positive version number"),
        (["--model", "{model}", "--version", "99999999999999999999999", "--to", "staging"],
         "argument --version: must be a version number from 1 to 2147483647"),  # the server answers 500
        (["--model", "{model}", "--version", "2147483648", "--to", "production"],
         "argument --version: must be a version number from 1 to 2147483647"),
        (["--model", "{model}", "--version", "\u00b2", "--to", "staging"],  # '²'.isdigit() is True
         "argument --version: must be a positive version number, got '\u00b2'"),
        (["--model", "{model}", "--version", "1", "--to", "heaven"], "argument --to: invalid choice: 'heaven'"),
        (["--model", "{model}", "--version", "1", "--to", "staging", "--challenger-alias", "latest"],
         "challenger alias 'latest' is reserved"),
        (["--model", "{model}", "--version", "2", "--to", "production", "--champion-alias", "V12", "--force",
          "--reason", "x"], "champion alias 'V12' is reserved"),
        (["--model", "{model}", "--version", "1", "--to", "staging", "--challenger-alias", "champion"],
         "must be three different names"),
        (["--model", "{model}", "--version", "2", "--to", "production", "--expect-champion", "x1"],
         "argument --expect-champion: must be a positive version number"),
        (["--model", "{model}", "--version", "2", "--to", "production", "--expect-champion", "\u00b9"],
         "argument --expect-champion: must be a positive version number"),
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


# --- numeric flags of every step: a usage error naming the flag, never "unexpected ValueError" ---------


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("rollback", ["--to-version", "99999999999999999999999", "--reason", "x"],
         "argument --to-version: must be a version number from 1 to 2147483647"),
        ("rollback", ["--to-version", "\u00b2", "--reason", "x"], "argument --to-version: must be a positive version"),
        ("compare_baseline", ["--candidate", "\u00b2"], "argument --candidate: must be a positive version number"),
        ("compare_baseline", ["--candidate", "1", "--baseline", "99999999999999999999999"],
         "argument --baseline: must be a version number from 1 to 2147483647"),
        ("archive", ["--keep-last", "-1", "--older-than", "30"], "argument --keep-last: must be a whole number, 0 or more"),
        ("archive", ["--keep-last", "\u00b2", "--older-than", "30"], "argument --keep-last: must be a whole number"),
        ("archive", ["--keep-last", "1", "--older-than", "nan"], "argument --older-than: must be a finite number of days"),
        ("archive", ["--keep-last", "1", "--older-than", "inf"], "argument --older-than: must be a finite number of days"),
        ("archive", ["--keep-last", "1", "--older-than", "1e400"], "argument --older-than: must be a finite number"),
    ],
)
def test_numeric_flags_out_of_range_are_usage_errors_naming_the_flag(tracking_uri, model_name, script, args, message):
    result = run_script(script, "--tracking-uri", tracking_uri, "--model", model_name, *args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0] and "unexpected" not in errors[0], result.stderr


def _action(tmp_path, **inputs: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    env.update({"GITHUB_OUTPUT": str(tmp_path / "out"), "RUNNER_TEMP": str(tmp_path)})
    env.update({"LIFECYCLE_" + k.upper(): v for k, v in inputs.items()})
    return subprocess.run([sys.executable, str(REPO / "scripts" / "action_entry.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"command": "promote", "version": "99999999999999999999999"},
         "input version must be a version number from 1 to 2147483647"),
        ({"command": "stage", "version": "\u00b2"}, "input version must be a positive version number"),
        ({"command": "promote", "version": "1", "expect_champion": "99999999999999999999999"},
         "input expect-champion must be a version number from 1 to 2147483647"),
        ({"command": "archive", "keep_last": "\u00b2"}, "input keep-last must be a whole number"),
        ({"command": "archive", "keep_last": "-1"}, "input keep-last must be a whole number"),
        ({"command": "archive", "older_than_days": "-3"}, "input older-than-days must be 0 or more"),
        ({"command": "archive", "older_than_days": "nan"}, "input older-than-days must be a finite number"),
        ({"command": "notify", "event": "promoted", "pr_number": "\u00b2"}, "input pr-number must be a pull request"),
    ],
)
def test_action_inputs_out_of_range_are_named_before_any_request(tracking_uri, model_name, tmp_path, inputs, message):
    result = _action(tmp_path, model_name=model_name, tracking_uri=tracking_uri, **inputs)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0] and "unexpected" not in errors[0], result.stderr


# --- promote: an archived version is bad input before the card gate ------------------------------------


def test_promoting_an_archived_version_is_bad_input_before_the_card_check(client, tracking_uri, make_versions,
                                                                           model_name):
    v1, v2 = make_versions(2)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    record_passing_verdict(client, model_name, v1)
    assert call(transition, [*base, "--version", v1, "--to", "staging"])[0] == 0
    assert call(transition, [*base, "--version", v2, "--to", "archived", "--reason", "superseded"])[0] == 0
    before = (aliases(client, model_name), len(audit_events(client, model_name)))
    result = run_script("transition", *base, "--version", v2, "--to", "production")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr  # was 1: "the model card ... is not ready"
    assert len(errors) == 1 and f"version {v2} of {model_name!r} is archived" in errors[0], result.stderr
    assert "card" not in errors[0]
    assert (aliases(client, model_name), len(audit_events(client, model_name))) == before


# --- the tracking URI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, message",
    [
        ("http://127.0.0.1:", "has no port after ':'"),
        ("http://127.0.0.1:99999", "has an invalid port"),
        ("http://127.0.0.1:5x", "has an invalid port"),
        ("htp://127.0.0.1:5000", "has an unknown scheme 'htp'"),
        ("localhost:5000", "has no scheme"),
        ("http://", "names no host"),
    ],
)
@pytest.mark.parametrize("given_as", ["flag", "environment"])
def test_malformed_tracking_uri_is_bad_input_naming_it(uri, message, given_as):
    if given_as == "flag":
        result = run_script("status", "--tracking-uri", uri, "--model", "m")
    else:
        result = run_script("status", "--model", "m", env={"MLFLOW_TRACKING_URI": uri})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "--tracking-uri / MLFLOW_TRACKING_URI" in errors[0] and repr(uri) in errors[0]


# --- a server that answers something else than MLflow --------------------------------------------------


class _LoginPage(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>...</form></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


def test_html_login_page_is_named_not_blamed_on_retries():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoginPage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = run_script(
            "transition", "--tracking-uri", f"http://127.0.0.1:{httpd.server_address[1]}",
            "--model", "m", "--version", "1", "--to", "production",
        )
    finally:
        httpd.shutdown()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 3, result.stderr
    assert len(errors) == 1, result.stderr
    assert "answered 200 with an HTML page ('Sign in')" in errors[0] and "login page" in errors[0]
    assert "retrying does not fix that" in errors[0]
    assert "bounded retries" not in errors[0] and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in errors[0]


# --- the time budget of one MLflow request -------------------------------------------------------------

_FITTED = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
           "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER")


def _fitted_env(env: dict[str, str]) -> dict[str, str]:
    """The MLflow client settings a step applies, in a fresh process with exactly ``env``."""
    code = ("import json, os; from model_lifecycle import settings; settings.bound_mlflow_retries(); "
            "print(json.dumps(dict(os.environ)))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout)


def _worst_case(env: dict[str, str]) -> float:
    """attempts x timeout + backoff as urllib3 2 sleeps it: nothing before the first retry, then
    factor x 2^(k-1) plus up to the jitter before retry k."""
    retries, timeout = int(env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]), int(env["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    factor, jitter = float(env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]), float(env["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"])
    return (retries + 1) * timeout + sum(factor * 2 ** (k - 1) + jitter for k in range(2, retries + 1))


def test_mlflow_client_settings_fit_the_budget_unless_set_by_the_user():
    clean = {k: v for k, v in os.environ.items()
             if k not in _FITTED and not k.startswith(("_LIFECYCLE", "LIFECYCLE_MLFLOW"))}
    default = _fitted_env(clean)
    assert _worst_case(default) <= 30  # was 3 x 30 s + backoff: 97 s measured
    assert default["MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER"] == "false"  # a Retry-After could exceed any budget
    # a child process inherits the fitted values, and still fits them to its own budget
    lowered = _fitted_env({**default, "LIFECYCLE_MLFLOW_BUDGET_SECONDS": "4"})
    assert _worst_case(lowered) <= 4 and lowered["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "4"
    # what the user sets of MLflow's own variables is kept; the rest is fitted around it
    own = _fitted_env({**clean, "MLFLOW_HTTP_REQUEST_TIMEOUT": "7"})
    assert own["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7" and _worst_case(own) <= 30
    both = _fitted_env({**clean, "MLFLOW_HTTP_REQUEST_TIMEOUT": "50", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"})
    assert (both["MLFLOW_HTTP_REQUEST_TIMEOUT"], both["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) == ("50", "3")


def test_server_that_accepts_and_never_answers_fails_within_the_budget():
    """The default budget (30 s) is checked above; here it is lowered to keep the test short."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept_and_hold():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_hold, daemon=True).start()
    budget = 4
    try:
        started = time.monotonic()
        result = run_script(
            "transition", "--tracking-uri", f"http://127.0.0.1:{listener.getsockname()[1]}",
            "--model", "m", "--version", "1", "--to", "production",
            env={"LIFECYCLE_MLFLOW_BUDGET_SECONDS": str(budget)}, timeout=120,
        )
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        for connection in held:
            connection.close()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 3, result.stderr
    assert len(errors) == 1 and "tracking server did not answer" in errors[0], result.stderr
    assert held, "the step never connected"
    assert budget <= elapsed < budget + 15  # + interpreter start and imports; was 97 s


def test_malformed_budget_is_bad_input_naming_the_setting():
    result = run_script("status", "--tracking-uri", "http://127.0.0.1:5000", "--model", "m",
                        env={"LIFECYCLE_MLFLOW_BUDGET_SECONDS": "nan"})
    assert result.returncode == 2, result.stderr
    assert "LIFECYCLE_MLFLOW_BUDGET_SECONDS must be a number of seconds, 1 or more, got 'nan'" in result.stderr
