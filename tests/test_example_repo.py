"""The adoption path (issue 14): ``examples/model-repo``, copied the way a team starts from it, taken
through the whole chain with act, a real MLflow server, the GitHub stand-in, the registration
relay and a real ``serve`` process:

1. a pull request that changes the training code: trained, registered as the pull request's
   candidate, gated, one sticky report comment, nothing staged, and the relay does not announce it;
2. the pull request merged: its release job sends the candidate's ``model-registered`` dispatch,
   and the registration workflow runs for it: checks, gate, staging deployment
   (parity, load), model card, notification, then promotion once the stand-in answers with an
   approval of the ``production`` environment; ``serve`` switches to it;
3. monitoring of a drifted window that ``serve`` captured: breach, automatic rollback by the rollback
   job, notification; ``serve`` switches back;
4. retention: the previous champion is kept until the champion is stable, and archived after its
   stable period (a healthy monitored window).

Every stage is checked from outside: the registry read back with a plain MlflowClient, the answers
of the ``serve`` process, and what the stand-in recorded (comments, issues, dispatches, webhook
posts). act's log is kept beside the repository copy for a failing run, never asserted on.

act cannot fetch the toolkit or GitHub's actions offline; as in test_workflows.py, act's command
line maps them (``--local-repository``) to a copy of this checkout and to tests/stubs, and
``LIFECYCLE_VENV``/``TRAINING_VENV``/``LIFECYCLE_TESTS_VENV`` point the action, the training and the
model tests at the project's venv (the workflows would otherwise create one each and install into it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import test_workflows
from conftest import REPO, aliases, audit_events
from fake_github import FakeGitHub
from test_workflows import ACT, CHECKOUT, SETUP_PYTHON, TOOLKIT

from model_lifecycle import tags
from model_lifecycle.edges.local_server import free_port

EXAMPLE = REPO / "examples" / "model-repo"
TEMPLATES = REPO / "workflows"
OWNER_REPO = "biopsy-team/biopsy-model"
ACTIONS_TOKEN = "ghs_actions_token_of_the_run"  # an installation token: writes as github-actions[bot]
PR = 7
SHIFTED = "mean_texture"


# --- one source: the example's workflows are the templates --------------------------------------------


def test_the_example_workflows_are_the_templates_themselves():
    """Symlinks, relative so that git stores them (mode 120000) and a clone resolves them; no copy
    that could drift. A checkout that turned them into files (core.symlinks=false) fails here."""
    workflows = EXAMPLE / ".github" / "workflows"
    assert sorted(p.name for p in workflows.iterdir()) == sorted(p.name for p in TEMPLATES.glob("*.yml"))
    for link in workflows.iterdir():
        assert link.is_symlink(), f"{link.name} is a copy, not the template"
        assert os.readlink(link) == f"../../../../workflows/{link.name}"
        assert link.resolve() == (TEMPLATES / link.name).resolve()
    tracked = subprocess.run(["git", "ls-files", "-s", "--", str(workflows)], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert all(line.startswith("120000 ") for line in tracked), tracked  # once committed: as symlinks


def test_a_copy_made_as_the_readme_says_holds_the_templates_content(tmp_path):
    """`cp -rL` (the example README's command) and shutil.copytree follow the links: the copy holds
    the templates' text, and nothing in it points back into the toolkit."""
    target = tmp_path / "my-model"
    subprocess.run(["cp", "-rL", str(EXAMPLE), str(target)], check=True)
    for template in TEMPLATES.glob("*.yml"):
        copied = target / ".github" / "workflows" / template.name
        assert not copied.is_symlink() and copied.read_bytes() == template.read_bytes()
    assert not [p for p in target.rglob("*") if p.is_symlink()]


# --- the chain ------------------------------------------------------------------------------------------


toolkit_copy = test_workflows.toolkit_copy  # the fixture: the files a release of the toolkit holds


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=team@example.com", "-c", "user.name=biopsy team", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: {old!r}"
    path.write_text(text.replace(old, new))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Process:
    """A long-running command of the toolkit (serve, relay) in its own session, stopped with SIGTERM."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], ready_url: str) -> None:
        self.log = open(log, "ab")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                        start_new_session=True)
        try:
            wait_for(lambda: self.process.poll() is not None or _get(ready_url) is not None, 120, ready_url)
            assert self.process.poll() is None, log.read_text()[-3000:]
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:  # SIGTERM: serve flushes its capture, the relay its queue
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


def _get(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read() or b"{}")
    except (OSError, ValueError):
        return None


class Serving(Process):
    """``serve`` following @champion, capturing every scored record, as production runs it."""

    def __init__(self, tracking_uri: str, model: str, port: int, capture: Path, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.capture = capture
        super().__init__([sys.executable, "-m", "model_lifecycle", "serve", "--tracking-uri", tracking_uri,
                          "--model", model, "--port", str(self.port), "--poll-seconds", "1",
                          "--capture-dir", str(capture)], log, {}, f"{self.url}/health")

    def health_version(self) -> str | None:
        answer = _get(f"{self.url}/health")
        return str(answer.get("version")) if answer else None

    def score(self, frame: pd.DataFrame) -> tuple[str, str]:
        """POST /invocations; the version that answered (X-Model-Version) and the request id."""
        body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(f"{self.url}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            return answer.headers["X-Model-Version"], answer.headers["X-Request-Id"]

    def switched_to(self, version: str, timeout: float = 60) -> None:
        wait_for(lambda: self.health_version() == version, timeout, f"serve to report v{version}")

    def captured_rows(self, version: str) -> int:
        import pyarrow.dataset as ds

        try:
            table = ds.dataset(str(self.capture), format="parquet", partitioning="hive").to_table(
                columns=["model_version"])
        except Exception:  # noqa: BLE001 - no file yet, or one being written
            return 0
        return sum(1 for v in table.column("model_version").to_pylist() if str(v) == version)


def traffic(serving: Serving, frame: pd.DataFrame, labels: pd.DataFrame, version: str, requests: int,
            labels_dir: Path, flip_large: float = 0.0) -> None:
    """``requests`` production requests of the whole frame, answered by ``version``, then their labels
    arriving late as a Parquet file (request id, record, the true target, the size band). With
    ``flip_large`` that share of the large tumours' labels disagrees with what the data says."""
    before = serving.captured_rows(version)
    arrived = []
    for _ in range(requests):
        answered_by, request_id = serving.score(frame)
        assert answered_by == version
        arrived.append(labels.assign(request_id=request_id, record=range(len(frame))))
    truth = pd.concat(arrived, ignore_index=True)
    if flip_large:
        large = truth.index[truth["size_band"] == "large"]
        flipped = large[: int(len(large) * flip_large)]
        truth.loc[flipped, "target"] = 1 - truth.loc[flipped, "target"]
    wanted = before + requests * len(frame)
    wait_for(lambda: serving.captured_rows(version) >= wanted, 30, f"{wanted} captured rows of v{version}")
    labels_dir.mkdir(exist_ok=True)
    truth.to_parquet(labels_dir / f"labels-{uuid.uuid4().hex[:8]}.parquet")


class Act:
    """act runs of the example repository's workflows, with the repository's variables and secrets."""

    def __init__(self, repo: Path, toolkit: Path, github: FakeGitHub, variables: dict[str, str],
                 secrets: dict[str, str]) -> None:
        self.repo, self.toolkit, self.github = repo, toolkit, github
        self.variables, self.secrets = variables, secrets
        self.timings: list[tuple[str, float]] = []

    def run(self, event: str, workflow: str, payload: dict | None = None) -> int:
        command = [str(ACT), event, "-W", f".github/workflows/{workflow}", "-P", "ubuntu-latest=-self-hosted",
                   "--local-repository", f"{TOOLKIT}={self.toolkit}",
                   "--local-repository", f"{SETUP_PYTHON}={REPO / 'tests' / 'stubs' / 'setup-python'}",
                   "--local-repository", f"{CHECKOUT}={REPO / 'tests' / 'stubs' / 'checkout'}",
                   "--env", f"MODEL_LIFECYCLE_TOOLKIT_COPY={self.toolkit}",
                   "--env", f"GITHUB_API_URL={self.github.url}",
                   "--env", f"LIFECYCLE_VENV={REPO / '.venv'}", "--env", f"TRAINING_VENV={REPO / '.venv'}",
                   "--env", f"LIFECYCLE_TESTS_VENV={REPO / '.venv'}",
                   "-s", f"GITHUB_TOKEN={ACTIONS_TOKEN}"]
        for key, text in self.variables.items():
            command += ["--var", f"{key}={text}"]
        for key, text in self.secrets.items():
            command += ["-s", f"{key}={text}"]
        if payload is not None:
            event_file = self.repo.parent / f"event-{uuid.uuid4().hex[:6]}.json"
            event_file.write_text(json.dumps(payload))
            command += ["-e", str(event_file)]
        started = time.monotonic()
        result = subprocess.run(command, cwd=self.repo, capture_output=True, text=True, timeout=600)
        self.timings.append((workflow, round(time.monotonic() - started, 1)))
        log = self.repo.parent / f"act-{Path(workflow).stem}-{uuid.uuid4().hex[:6]}.log"
        log.write_text(result.stdout + result.stderr)  # for whoever reads a failure: pytest shows tmp paths
        print(f"act {event} {workflow}: exit {result.returncode} in {time.monotonic() - started:.1f} s; log {log}")
        return result.returncode


def version_numbers(client, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int)


def monitoring_windows(client, name: str) -> list[Any]:
    experiment = client.get_experiment_by_name("model-monitoring")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{tags.RUN_KIND}` = 'monitor'") if experiment else []
    return sorted((r for r in runs if r.data.tags.get(tags.RUN_MODEL) == name), key=lambda r: r.info.start_time)


def told(github: FakeGitHub) -> list[str]:
    return [w["body"]["text"] for w in github.webhooks if w["hook"] == "/hooks/biopsy-team"]


def test_the_example_repository_from_pull_request_to_retention(tmp_path, tracking_uri, client, model_name,
                                                               toolkit_copy):
    started = time.monotonic()
    github = FakeGitHub().start()
    processes: list[Process] = []
    try:
        _chain(tmp_path, tracking_uri, client, model_name, toolkit_copy, github, processes)
    finally:
        github.on_request = None
        for process in reversed(processes):
            process.stop()
        github.stop()
        print(f"whole chain: {time.monotonic() - started:.0f} s")


def _chain(tmp_path: Path, tracking_uri: str, client, name: str, toolkit: Path, github: FakeGitHub,
           processes: list[Process]) -> None:
    # --- the team's repository: the example copied as its README says (links followed), configured
    repo = tmp_path / "biopsy-model"
    subprocess.run(["cp", "-rL", str(EXAMPLE), str(repo)], check=True)
    shutil.rmtree(repo / ".pytest_cache", ignore_errors=True)
    capture, labels_dir = tmp_path / "capture", tmp_path / "labels"
    # The team lists its serving endpoint; and this test cannot wait a week: its copy of the policy
    # shortens the stable period to "one healthy window" (every other line is the example's).
    policy = repo / "model-policy.yml"
    serve_port = free_port()
    replace_once(policy, "endpoints: []", f"endpoints: [http://127.0.0.1:{serve_port}]")
    replace_once(policy, "stable_days: 7", "stable_days: 0")
    replace_once(policy, "min_windows: 3", "min_windows: 1")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", f"https://github.com/{OWNER_REPO}")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start from the toolkit's example model repository")

    # --- production before the pull request: v1, then v2 (a retrain), each through the gate and
    # promoted; their training is the example's own script, run as on a developer's machine
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    trained = subprocess.run([sys.executable, "train/train_and_register.py", "--model", name], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0 and trained.stdout == "version=1\n", trained.stderr[-3000:]
    from model_lifecycle.api import gate, lifecycle

    source = client.get_model_version(name, "1").source
    v2 = lifecycle.register(lifecycle.RegisterRequest(name, source, reason="retrained",
                                                      tracking_uri=tracking_uri)).version
    previous = "none"
    for version in ("1", v2):
        gate.compare(gate.CompareRequest(name, version, str(policy), output=str(tmp_path / "verdict.json"),
                                         report=str(tmp_path / "report.md"), stage=True, tracking_uri=tracking_uri))
        lifecycle.promote(lifecycle.PromoteRequest(
            name, version, expect_champion=previous, reason="production before the example's pull request",
            skip_card_check=True, approval=lifecycle.Approval("alice", "local", "set-up"), tracking_uri=tracking_uri))
        previous = version
    assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}

    serving = Serving(tracking_uri, name, serve_port, capture, tmp_path / "serve.log")
    processes.append(serving)
    holdout = pd.read_csv(repo / "data" / "holdout.csv")
    features, truth = holdout.drop(columns=["target", "size_band"]), holdout[["target", "size_band"]]
    assert serving.health_version() == "2" and serving.score(features.head(1))[0] == "2"

    # the registration relay, as the team runs it beside MLflow. This server has no webhook secret key,
    # so MLflow sends it nothing: the relay's reconciler (every second here) finds the new version, as
    # it does for a delivery MLflow dropped
    relay_port = free_port()
    processes.append(Process(
        [sys.executable, "-m", "model_lifecycle", "relay", "serve", "--port", str(relay_port),
         "--db", str(tmp_path / "relay.db"), "--github-repo", OWNER_REPO, "--tracking-uri", tracking_uri,
         "--reconcile-seconds", "1", "--models", name],
        tmp_path / "relay.log",
        {"RELAY_WEBHOOK_SECRET": "relay-secret-of-the-biopsy-team-0123456789", "GITHUB_TOKEN": "relay-token",
         "GITHUB_API_URL": github.url}, f"http://127.0.0.1:{relay_port}/healthz"))

    act = Act(repo, toolkit, github,
              variables={"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": name,
                         "MODEL_MONITOR_WINDOW": str(capture), "MODEL_MONITOR_LABELS": str(labels_dir),
                         "MODEL_KEEP_LAST": "2"},
              secrets={"MODEL_NOTIFY_WEBHOOK": f"{github.url}/hooks/biopsy-team"})

    # --- 1. a pull request that changes the training code ------------------------------------------------
    git(repo, "checkout", "-q", "-b", "stronger-model")
    replace_once(repo / "train" / "train_and_register.py", 'PARAMS = {"C": 0.1,', 'PARAMS = {"C": 1.0,')
    git(repo, "commit", "-qam", "train: weaker regularisation")
    head = git(repo, "rev-parse", "HEAD")
    github.pull_request(OWNER_REPO, PR)
    event = {"number": PR, "pull_request": {"number": PR, "head": {"ref": "stronger-model", "sha": head},
                                            "base": {"ref": "main"}}}
    assert act.run("pull_request", "on-pull-request.yml", event) == 0

    assert version_numbers(client, name) == ["1", "2", "3"]
    candidate = client.get_model_version(name, "3")
    assert candidate.tags[tags.GIT_COMMIT] == head
    training = client.get_run(candidate.tags[tags.TRAINING_RUN_ID])
    assert training.data.params["C"] == "1.0"  # the pull request's code trained it
    assert candidate.tags[tags.dataset("holdout", "rows")] == str(len(holdout))
    assert candidate.tags[tags.VERDICT_PASSED] == "true" and candidate.tags[tags.VERDICT_BASELINE] == "2"
    assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}  # nothing staged
    assert not [e for e in audit_events(client, name) if e["version"] == "3" and e["action"] != "register"]
    comments = github.issues[OWNER_REPO][PR]["comments"]
    assert len(comments) == 1 and comments[0]["user"]["login"] == "github-actions[bot]"
    assert "passes the promotion gate" in comments[0]["body"] and f"{name} v3" in comments[0]["body"]
    assert f"<!-- model-lifecycle:{name} -->" in comments[0]["body"]  # sticky: the next push edits this one
    assert serving.health_version() == "2"

    # the candidate carries its pull request, so the relay (reconciling every second) never announces it
    assert candidate.tags[tags.PULL_REQUEST] == str(PR) and candidate.tags[tags.PULL_REQUEST_HEAD] == head

    def dispatched() -> list[dict[str, Any]]:
        return [d for d in github.dispatches if d["client_payload"]["name"] == name]

    wait_for(lambda: "relay_candidates_skipped_total 1" in urllib.request.urlopen(
        f"http://127.0.0.1:{relay_port}/metrics", timeout=5).read().decode(), 60, "the relay to pass the candidate by")
    assert dispatched() == []

    # --- 2. merged: the release job sends the candidate to the registration workflow, which runs on main --
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "stronger-model")
    closed = {"action": "closed", "number": PR, "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
              "pull_request": {"number": PR, "merged": True, "head": {"ref": "stronger-model", "sha": head,
                                                                     "repo": {"full_name": OWNER_REPO}},
                               "base": {"ref": "main"}}}
    assert act.run("pull_request", "on-pull-request.yml", closed) == 0
    assert [(d["repo"], d["event_type"], d["client_payload"]["version"], d["client_payload"]["pull_request"])
            for d in dispatched()] == [(OWNER_REPO, "model-registered", "3", str(PR))]
    assert version_numbers(client, name) == ["1", "2", "3"]  # nothing trained on close
    github.protect(OWNER_REPO, "production", ["alice", "bob"])
    approved_at: dict[str, str] = {}

    def reviewer_approves(method: str, path: str) -> None:
        """The reviewers approve the pending deployment; GitHub releases the promote job, which reads it."""
        found = re.fullmatch(rf"/repos/{OWNER_REPO}/actions/runs/(\d+)/approvals", path)
        if method == "GET" and found and not github.approvals.get(f"{OWNER_REPO}#{found.group(1)}"):
            now = datetime.now(timezone.utc)
            stamp = [(now + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in (-60, -5, -4)]
            github.approve(OWNER_REPO, found.group(1), "production", "alice", "gate, card and staging look right")
            github.deployment(OWNER_REPO, "production", sha=git(repo, "rev-parse", "HEAD"), ref="main",
                              run_id=found.group(1), created_at=stamp[0],
                              statuses=[("waiting", stamp[0]), ("queued", stamp[1]), ("in_progress", stamp[2])])
            approved_at["time"] = stamp[1]

    github.on_request = reviewer_approves
    registered = dispatched()[-1]
    payload = {"action": registered["event_type"], "branch": "main", "client_payload": registered["client_payload"]}
    assert act.run("repository_dispatch", "on-registration.yml", payload) == 0
    github.on_request = None

    assert aliases(client, name) == {"champion": "3", "previous-champion": "2"}
    promoted = client.get_model_version(name, "3")
    assert promoted.tags[tags.CARD_COMPLETE] == "true" and promoted.tags[tags.STAGING_PASSED] == "true"
    events = audit_events(client, name)
    stage = [e for e in events if e["action"] == "stage" and e["version"] == "3"]
    assert len(stage) == 1 and stage[0]["evidence"]["verdict"] == promoted.tags[tags.VERDICT_SHA256]
    promote = events[-1]
    assert promote["action"] == "promote" and promote["version"] == "3" and promote["approver"] == "alice"
    assert promote["approval"]["comment"] == "gate, card and staging look right"
    assert promote["approval"]["time"] == approved_at["time"]
    assert promote["details"]["expected_champion"] == "2" and promote["evidence"]["card"].startswith("sha256:")
    serving.switched_to("3", timeout=10)  # the promote job verified the roll-out; serve agrees
    assert serving.score(features.head(1))[0] == "3"
    messages = told(github)
    assert messages[0].startswith(f"### Staged as @challenger: approval requested: {name} v3")
    assert messages[1].startswith(f"### Promoted to production (@champion): {name} v3")
    assert list(github.issues[OWNER_REPO]) == [PR]  # no issue opened: the templates ask for none

    # --- 3. a drifted production window: breach, automatic rollback, notification ---------------------
    drifted = features.assign(**{SHIFTED: features[SHIFTED] + 2 * features[SHIFTED].std()})
    traffic(serving, drifted, truth, "3", requests=3, labels_dir=labels_dir, flip_large=0.4)
    assert act.run("schedule", "monitor.yml") != 0  # the monitor job fails on a breach: the run goes red

    windows = monitoring_windows(client, name)
    assert len(windows) == 1 and windows[0].data.tags[tags.RUN_WINDOW_STATUS] == "breach"
    assert windows[0].data.tags[tags.RUN_VERSION] == "3"
    assert windows[0].data.tags[tags.RUN_WINDOW_ACTION] == "rollback-due"
    assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}
    rollback = audit_events(client, name)[-1]
    assert rollback["action"] == "rollback" and rollback["version"] == "2"
    assert rollback["details"]["rolled_back_from"] == "3"
    assert rollback["evidence"] == {"monitoring_run": windows[0].info.run_id,
                                    "findings": windows[0].data.tags[tags.RUN_FINDINGS_SHA256]}
    assert SHIFTED in rollback["reason"]
    breach, rolled_back = told(github)[2:]
    assert breach.startswith(f"### Monitoring breach in production: {name} v3")
    assert "rollback-due" in breach and SHIFTED in breach
    assert rolled_back.startswith(f"### Production rolled back: {name}") and "no longer serves v3" in rolled_back
    serving.switched_to("2", timeout=15)
    assert serving.score(features.head(1))[0] == "2"

    # --- 4. retention: the previous champion is kept until the champion is stable, archived after ----
    assert act.run("schedule", "retention.yml") == 0
    assert not any(tags.ARCHIVED_AT in client.get_model_version(name, v).tags for v in ("1", "2", "3"))
    assert aliases(client, name) == {"champion": "2", "previous-champion": "1"}

    traffic(serving, features, truth, "2", requests=2, labels_dir=labels_dir)  # production as it should be
    assert act.run("schedule", "monitor.yml") == 0
    healthy = monitoring_windows(client, name)[-1]
    assert healthy.data.tags[tags.RUN_VERSION] == "2" and healthy.data.tags[tags.RUN_WINDOW_STATUS] == "healthy"
    assert len(told(github)) == 4  # a healthy window tells nobody anything

    assert act.run("schedule", "retention.yml") == 0
    archived = {v: tags.ARCHIVED_AT in client.get_model_version(name, v).tags for v in ("1", "2", "3")}
    assert archived == {"1": True, "2": False, "3": False}  # 2 and 3: the newest two (MODEL_KEEP_LAST)
    assert aliases(client, name) == {"champion": "2"}
    archive = audit_events(client, name)[-1]
    assert archive["action"] == "archive" and archive["version"] == "1" and "stable" in archive["reason"]
    assert serving.health_version() == "2"
    print("act runs:", act.timings)

