"""The caller templates, the reusable workflow and the composite action, executed for real with act.

act runs the jobs on this machine (self-hosted platform, no Docker). The substitutions, all
documented in the README and none an edit of the shipped files:
* ``--local-repository ml-platform/model-promotion-toolkit@v1=<copy of this checkout>`` makes the
  templates' ``uses:`` of the toolkit resolve to the code under test;
* ``--local-repository actions/setup-python@<sha>=tests/stubs/setup-python``: act resolves that
  action even when its step is skipped and cannot fetch it offline;
* ``--local-repository actions/checkout@<sha>=tests/stubs/checkout``: act skips the checkout of the
  repository under test by itself; the reusable workflow's other checkout, of the toolkit at its own
  commit (``job.workflow_sha``, which act does not have), becomes a copy of the code under test
  (``MODEL_LIFECYCLE_TOOLKIT_COPY``); the workflow skips its "which commit" check when ``env.ACT``;
* ``GITHUB_API_URL`` points at a local stand-in for GitHub's REST API, and ``LIFECYCLE_VENV`` at the
  project's virtual environment so the action's install step finds its packages in place.
The MLflow server is the real one of the test session.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import REPO, aliases, audit_events, call, record_passing_verdict
from fake_github import FakeGitHub

from model_lifecycle.edges.commands import transition

ACT = Path(sys.executable).with_name("act")
TOOLKIT = "ml-platform/model-promotion-toolkit@v1"
OWNER_REPO = "acme/churn"
SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065"  # as pinned in action.yml
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"  # as pinned in the workflows


@pytest.fixture(scope="module")
def toolkit_copy(tmp_path_factory) -> Path:
    """The files git would ship (tracked and new, not ignored): what a release of the action holds."""
    target = tmp_path_factory.mktemp("toolkit")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture()
def github():
    fake = FakeGitHub().start()
    yield fake
    fake.stop()


@pytest.fixture()
def user_repo(tmp_path, trained) -> Path:
    """A model repository as a team would have it: templates copied in, policy, card, tests."""
    repo = tmp_path / "churn-repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    for template in ("on-dispatch.yml", "on-registration.yml", "on-pull-request.yml"):
        shutil.copy(REPO / "workflows" / template, repo / ".github" / "workflows" / template)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_model.py").write_text(
        "import os\n\ndef test_model_uri_is_given():\n    assert os.environ['MODEL_URI'].startswith('models:/')\n")
    (repo / "train").mkdir()
    (repo / "train" / "train_and_register.py").write_text(
        "import json, os, subprocess, sys\n"
        "out = subprocess.run([os.environ['TOOLKIT_PYTHON'], os.environ['TOOLKIT_DIR'] + '/scripts/register.py',\n"
        "                      '--model', sys.argv[2], '--model-uri', os.environ['CANDIDATE_URI'], '--json'],\n"
        "                     capture_output=True, text=True, check=True).stdout\n"
        "print('version=' + json.loads(out)['version'])\n")
    shutil.copy(REPO / "model_lifecycle" / "edges" / "demo_files" / "demo-model-card.yml", repo / "model-card.yml")
    write_policy(repo, trained["logistic"].holdout_path, floor=0.9)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "remote", "add", "origin", f"https://github.com/{OWNER_REPO}"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "model repo"], cwd=repo, check=True)
    return repo


def write_policy(repo: Path, holdout: str, floor: float, improvement: float | None = None) -> None:
    gates = [{"metric": "roc_auc", "floor": floor}]
    if improvement:
        gates.append({"metric": "roc_auc", "improvement": {"absolute": improvement}})
    (repo / "model-policy.yml").write_text(yaml.safe_dump({
        "version": 1, "task": "binary", "holdout": {"path": holdout, "target": "target"},
        "slices": {"columns": ["size_band"], "min_size": 30}, "gates": gates,
        "tests": {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider tests"},
    }))


def run_act(repo: Path, event: str, workflow: str, tracking_uri: str, github: FakeGitHub, *,
            inputs: dict[str, str] | None = None, payload: dict | None = None, env: dict[str, str] | None = None,
            secrets: dict[str, str] | None = None, toolkit: Path, model: str = "") -> subprocess.CompletedProcess:
    command = [str(ACT), event, "-W", f".github/workflows/{workflow}", "-P", "ubuntu-latest=-self-hosted",
               "--local-repository", f"{TOOLKIT}={toolkit}",
               "--local-repository", f"{SETUP_PYTHON}={REPO / 'tests' / 'stubs' / 'setup-python'}",
               "--local-repository", f"{CHECKOUT}={REPO / 'tests' / 'stubs' / 'checkout'}",
               "--env", f"MODEL_LIFECYCLE_TOOLKIT_COPY={toolkit}",
               "--var", f"MLFLOW_TRACKING_URI={tracking_uri}", "--var", f"MODEL_NAME={model}",
               "--env", f"GITHUB_API_URL={github.url}", "--env", f"LIFECYCLE_VENV={REPO / '.venv'}",
               "-s", "GITHUB_TOKEN=test-token"]
    for key, text in (inputs or {}).items():
        command += ["--input", f"{key}={text}"]
    for key, text in (env or {}).items():
        command += ["--env", f"{key}={text}"]
    for key, text in (secrets or {}).items():
        command += ["-s", f"{key}={text}"]
    if payload is not None:
        event_file = repo.parent / f"event-{uuid.uuid4().hex}.json"
        event_file.write_text(json.dumps(payload))
        command += ["-e", str(event_file)]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600)
    # keep the whole log beside the repository: act's output is what a failing test needs to show
    (repo.parent / f"act-{event}-{uuid.uuid4().hex[:6]}.log").write_text(result.stdout + result.stderr)
    return result


def champion_and_candidate(client, tracking_uri: str, make_versions, model_name: str) -> tuple[str, str]:
    """v1 champion (its gate passed with no champion to compare with), v2 a candidate the gate has not seen."""
    v1, v2 = make_versions(2)
    base = ["--tracking-uri", tracking_uri, "--model", model_name]
    record_passing_verdict(client, model_name, v1, None)
    assert call(transition, [*base, "--version", v1, "--to", "staging"])[0] == 0
    assert call(transition, [*base, "--version", v1, "--to", "production", "--skip-card-check",
                             "--reason", "set-up"])[0] == 0
    return v1, v2


def test_gate_failure_stages_nothing_and_fails_the_run(client, tracking_uri, trained, make_versions, model_name,
                                                      user_repo, github, toolkit_copy):
    v1, v2 = champion_and_candidate(client, tracking_uri, make_versions, model_name)
    write_policy(user_repo, trained["logistic"].holdout_path, floor=0.9, improvement=0.5)
    result = run_act(user_repo, "workflow_dispatch", "on-dispatch.yml", tracking_uri, github,
                     inputs={"model-name": model_name, "version": v2}, toolkit=toolkit_copy)
    assert result.returncode != 0
    assert "fails the promotion gate" in result.stdout and "is below the required 0.5000" in result.stdout
    assert aliases(client, model_name) == {"champion": v1}
    assert [e["action"] for e in audit_events(client, model_name)].count("stage") == 1  # only the set-up's
    assert not github.calls("GET", r"/repos/acme/churn/actions/runs/\d+/approvals")


def test_registration_then_dispatch_promotes_only_with_a_recorded_approval(
        client, tracking_uri, make_versions, model_name, user_repo, github, toolkit_copy):
    v1, v2 = champion_and_candidate(client, tracking_uri, make_versions, model_name)
    github.protect(OWNER_REPO, "production", ["alice"])
    payload = {"action": "model-registered",
               "client_payload": {"name": model_name, "version": v2, "source": "models:/m-x", "run_id": None}}
    first = run_act(user_repo, "repository_dispatch", "on-registration.yml", tracking_uri, github,
                    payload=payload, toolkit=toolkit_copy)
    assert first.returncode != 0
    assert "no approval of run" in first.stdout
    # staged, card built and checked, team notified; production untouched
    assert aliases(client, model_name) == {"champion": v1, "challenger": v2}
    candidate_tags = client.get_model_version(model_name, v2).tags
    assert candidate_tags["lifecycle.card.complete"] == "true"
    assert github.calls("GET", r"/repos/acme/churn/actions/runs/\d+/approvals")
    # the stage job ran on its own (another job than compare): the gate's evidence reached it through
    # the registry, so its audit event carries the digest of the verdict the compare job tagged
    stage_event = [e for e in audit_events(client, model_name) if e["action"] == "stage"][-1]
    assert stage_event["version"] == v2
    assert stage_event["evidence"]["verdict"] == candidate_tags["lifecycle.verdict.sha256"]
    assert candidate_tags["lifecycle.verdict.passed"] == "true"

    run_id = github.calls("GET", r"/repos/acme/churn/actions/runs/\d+/approvals")[0]["path"].split("/")[-2]
    github.approve(OWNER_REPO, run_id, "production", "alice", "reviewed the report")
    # what GitHub records when it releases the approved job: the run's deployment and its statuses
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=user_repo, capture_output=True, text=True).stdout.strip()
    github.deployment(OWNER_REPO, "production", sha=sha, ref="main", run_id=run_id, created_at="2026-11-27T09:00:00Z",
                      statuses=[("queued", "2026-11-27T10:00:00Z"), ("in_progress", "2026-11-27T10:00:04Z")])
    second = run_act(user_repo, "workflow_dispatch", "on-dispatch.yml", tracking_uri, github,
                     inputs={"model-name": model_name, "version": v2}, toolkit=toolkit_copy)
    assert second.returncode == 0, second.stdout[-4000:]
    assert aliases(client, model_name) == {"champion": v2, "previous-champion": v1}
    promote = audit_events(client, model_name)[-1]
    assert promote["action"] == "promote" and promote["approver"] == "alice"
    assert promote["approval"]["comment"] == "reviewed the report"
    assert promote["approval"]["time"] == "2026-11-27T10:00:00Z"
    assert promote["details"]["expected_champion"] == v1 and promote["evidence"]["card"].startswith("sha256:")
    # the second run's compare job tagged a fresh verdict; the promote job (another job) recorded it
    assert promote["evidence"]["verdict"] == client.get_model_version(model_name, v2).tags["lifecycle.verdict.sha256"]


def test_a_promotion_superseded_while_it_waited_is_reported_as_superseded(
        client, tracking_uri, make_versions, model_name, user_repo, github, toolkit_copy):
    """Promotions of two versions no longer share a concurrency group (GitHub would cancel the older
    pending one without a word): both run, the toolkit's lock and compare-and-set decide, and the one
    that lost says so. Here v3 is promoted by someone else while v2's run reads its approval."""
    v1, v2 = champion_and_candidate(client, tracking_uri, make_versions, model_name)
    (v3,) = make_versions(1)
    github.protect(OWNER_REPO, "production", ["alice"])
    base = ["--tracking-uri", tracking_uri, "--model", model_name]

    def meanwhile(method: str, path: str) -> None:
        found = re.fullmatch(r"/repos/acme/churn/actions/runs/(\d+)/approvals", path)
        if method == "GET" and found and not github.approvals:
            record_passing_verdict(client, model_name, v3, v1)  # the other promotion's gate, against v1
            assert call(transition, [*base, "--version", v3, "--to", "staging"])[0] == 0
            assert call(transition, [*base, "--version", v3, "--to", "production", "--expect-champion", v1,
                                     "--skip-card-check", "--reason", "the other promotion"])[0] == 0
            github.approve(OWNER_REPO, found.group(1), "production", "alice", "v2 looks fine")

    github.on_request = meanwhile
    result = run_act(user_repo, "workflow_dispatch", "on-dispatch.yml", tracking_uri, github,
                     inputs={"model-name": model_name, "version": v2}, toolkit=toolkit_copy,
                     secrets={"MODEL_NOTIFY_WEBHOOK": f"{github.url}/hooks/team"})
    assert result.returncode != 0
    assert "moved since you looked" in result.stdout and "Superseded" in result.stdout, result.stdout[-4000:]
    assert aliases(client, model_name) == {"champion": v3, "previous-champion": v1}
    assert not [e for e in audit_events(client, model_name) if e["action"] == "promote" and e["version"] == v2]
    told = [w["body"]["text"] for w in github.webhooks]
    assert told[0].startswith(f"### Staged as @challenger: approval requested: {model_name} v{v2}")
    assert told[-1].startswith(f"### Promotion refused: {model_name} v{v2}")
    assert "Superseded" in told[-1] and f"@champion is now v{v3}" in told[-1], told[-1]


def test_pull_request_reports_in_one_comment_and_never_promotes(
        client, tracking_uri, trained, make_versions, model_name, user_repo, github, toolkit_copy):
    v1, _ = champion_and_candidate(client, tracking_uri, make_versions, model_name)
    github.pull_request(OWNER_REPO, 5)
    payload = {"pull_request": {"number": 5, "head": {"ref": "feature"}, "base": {"ref": "main"}}, "number": 5}
    env = {"TOOLKIT_PYTHON": sys.executable, "TOOLKIT_DIR": str(toolkit_copy),
           "CANDIDATE_URI": trained["logistic"].model_uri}
    for _ in range(2):
        result = run_act(user_repo, "pull_request", "on-pull-request.yml", tracking_uri, github, payload=payload,
                         env=env, toolkit=toolkit_copy, model=model_name)
        assert result.returncode == 0, result.stdout[-4000:]
    comments = github.issues[OWNER_REPO][5]["comments"]
    assert len(comments) == 1 and "passes the promotion gate" in comments[0]["body"]
    assert aliases(client, model_name) == {"champion": v1}
    events = audit_events(client, model_name)
    assert [e["version"] for e in events if e["action"] in ("stage", "promote")] == [v1, v1]
    assert [e["action"] for e in events].count("register") == 4  # each PR run registered its candidate


def test_shell_metacharacters_in_inputs_stay_data(tracking_uri, user_repo, github, toolkit_copy, tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    name = f'x"; touch {marker}; echo "$(touch {marker})`touch {marker}`'
    result = run_act(user_repo, "workflow_dispatch", "on-dispatch.yml", tracking_uri, github,
                     inputs={"model-name": name, "version": "1\ntouch " + str(marker)}, toolkit=toolkit_copy)
    assert result.returncode != 0
    assert not marker.exists()
    assert "input version must be a positive version number" in result.stdout


def test_missing_input_and_unknown_command_are_named(tmp_path):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "out"), "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
           "PATH": "/usr/bin:/bin"}
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "action_entry.py")],
                             env={**env, "LIFECYCLE_COMMAND": "promote", "LIFECYCLE_MODEL_NAME": "churn"},
                             capture_output=True, text=True)
    assert missing.returncode == 2
    assert "::error title=Bad input::input version must be set when command is promote" in missing.stdout
    unknown = subprocess.run([sys.executable, str(REPO / "scripts" / "action_entry.py")],
                             env={**env, "LIFECYCLE_COMMAND": "deploy"}, capture_output=True, text=True)
    assert unknown.returncode == 2
    assert "must be one of check, evaluate, compare, card, stage, stage-check, promote, verify-rollout, rollback, archive, monitor, notify, status" in unknown.stdout


def test_the_action_installs_only_known_extras(tmp_path):
    """The action's install step, run as the runner runs it (bash, its env): an unknown extra is
    named with exit 2 before anything is installed; known ones (any separators) install once per job,
    pinned by constraints.txt, and a prepared venv that has them is used as it is."""
    import yaml

    steps = yaml.safe_load((REPO / "action.yml").read_text())["runs"]["steps"]
    script = next(s for s in steps if s.get("name", "").startswith("Install the toolkit"))["run"]
    assert "${{" not in script

    def install(extras: str, venv: Path, **more: str) -> subprocess.CompletedProcess:
        summary = tmp_path / "summary.md"
        summary.write_text("")
        return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, cwd=tmp_path, env={
            "PATH": "/usr/bin:/bin", "GITHUB_ACTION_PATH": str(REPO), "RUNNER_TEMP": str(tmp_path),
            "LIFECYCLE_VENV": str(venv), "LIFECYCLE_EXTRAS": extras, "GITHUB_STEP_SUMMARY": str(summary), **more})

    marker = tmp_path / "pwned"
    for bad, shown in (("sparkle", "'sparkle'"), ("spark,gpu", "'gpu'"), ("spark\ngpu", "'gpu'"),
                       (f"$(touch {marker})", "(a value that is not a name)"), ("*", "(a value that is not a name)"),
                       ("a`b", "(a value that is not a name)"),
                       ("x\r::warning::y", "'x'")):
        done = install(bad, tmp_path / "fresh-venv")
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert f"::error title=extras::unknown extra {shown} in" in done.stdout and "(known: spark)" in done.stdout
        assert "::warning::" not in done.stdout and "is not a known extra" in (tmp_path / "summary.md").read_text()
        assert not (tmp_path / "fresh-venv").exists() and not marker.exists()
    # a venv made earlier in the job: its python (a stand-in that records its calls and has no pyspark)
    ready = tmp_path / "ready-venv"
    (ready / "bin").mkdir(parents=True)
    (ready / ".model-lifecycle-installed").touch()
    calls = tmp_path / "calls.txt"
    (ready / "bin" / "python").write_text(
        f'#!/bin/bash\necho "$*" >> {calls}\nif [ "$1" = "-c" ]; then exit "${{HAS_PYSPARK:-1}}"; fi\n')
    (ready / "bin" / "python").chmod(0o755)
    for extras in ("", " , ,"):
        assert install(extras, ready).returncode == 0 and not calls.exists()
    done = install("spark,spark", ready)  # named twice, installed once, pinned
    installs = [line for line in calls.read_text().splitlines() if line.startswith("-m pip install")]
    assert done.returncode == 0 and installs == [
        f"-m pip install --quiet --disable-pip-version-check pyspark -c {REPO / 'constraints.txt'}"], calls.read_text()
    calls.unlink()
    assert install(" spark\n", ready).returncode == 0 and not calls.exists()  # installed earlier in the job
    (ready / ".model-lifecycle-pyspark").unlink()
    done = install("spark", ready, HAS_PYSPARK="0")  # a prepared venv that has it: used as it is
    assert done.returncode == 0 and "pip install" not in calls.read_text(), calls.read_text()
