"""Static checks of the action and workflows: zizmor (security audit, every persona), the GitHub
JSON schemas, every third-party `uses:` pinned to a full commit SHA, and what the workflow files
promise (concurrency groups, which toolkit commit runs, where the production credential lives, the
runner) checked by reading the YAML and evaluating its expressions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent
WORKFLOW_FILES = sorted((REPO / ".github" / "workflows").glob("*.yml")) + sorted((REPO / "workflows").glob("*.yml"))
ACTION_FILES = [REPO / "action.yml"]
OWN_ACTION = "ml-platform/model-promotion-toolkit"
REUSABLE = REPO / ".github" / "workflows" / "model-lifecycle.yml"
TEMPLATES = sorted((REPO / "workflows").glob("*.yml"))
TOOLKIT_PATH = ".model-lifecycle-toolkit"


@pytest.mark.parametrize("persona", ["regular", "auditor", "pedantic"])
def test_zizmor_finds_nothing(persona):
    """The action, the reusable workflow and the templates users copy, in every persona; a suppression
    is an inline ``# zizmor: ignore[rule] reason``."""
    files = [str(p) for p in ACTION_FILES + WORKFLOW_FILES]
    assert any("/workflows/" in f and ".github" not in f for f in files)  # the templates are audited too
    result = subprocess.run([str(BIN / "zizmor"), "--offline", "--persona", persona, *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_zizmor_suppression_says_why():
    for path in ACTION_FILES + WORKFLOW_FILES:
        for line in path.read_text().splitlines():
            found = re.search(r"zizmor: ignore\[[\w-]+\](.*)", line)
            if found:
                assert len(found.group(1).strip()) > 10, f"{path.name}: a suppression without its reason: {line}"


@pytest.mark.parametrize("schema, files", [("vendor.github-actions", ACTION_FILES),
                                           ("vendor.github-workflows", WORKFLOW_FILES)])
def test_files_validate_against_githubs_schemas(schema, files):
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_third_party_action_is_pinned_to_a_full_sha():
    uses = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", re.MULTILINE)
    for path in ACTION_FILES + WORKFLOW_FILES:
        for ref in uses.findall(path.read_text()):
            if ref.startswith("./"):
                continue
            if ref.startswith(OWN_ACTION) and path.parent.name == "workflows" and path.parent.parent == REPO:
                continue  # a template: the user pins the toolkit to the release they reviewed
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned to a SHA"


def test_no_expression_inside_run_blocks():
    """Inputs reach scripts through env: only; a ${{ }} in run: is a template injection."""
    blocks = []
    for path in ACTION_FILES + WORKFLOW_FILES:
        for block in re.findall(r"run: \|\n((?:\s{8,}.*\n?)+)", path.read_text()):
            blocks.append(block)
            assert "${{" not in block, f"{path.name} has an expression inside run:"
    assert len(blocks) >= 3  # the action's two steps and the pull-request template's training step


def test_readme_documents_every_action_input_and_output():
    import yaml

    readme = (REPO / "README.md").read_text()
    action = yaml.safe_load((REPO / "action.yml").read_text())
    for name, spec in action["inputs"].items():
        assert f"### `{name}`" in readme and spec.get("description")
    for name in action["outputs"]:
        assert f"- `{name}`:" in readme


# --- GitHub's expression language, as much of it as the workflow files use ---------------------------


def evaluate(text: str, contexts: dict[str, Any]) -> Any:
    """A workflow value: a whole ``${{ expr }}`` gives its value, anything else the text with each
    ``${{ }}`` replaced (null as '', booleans as true/false), as GitHub does."""
    whole = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", text, re.DOTALL)
    if whole and "${{" not in whole.group(1):
        return _Expression(whole.group(1), contexts).value()
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(_Expression(m.group(1), contexts).value()), text,
                  flags=re.DOTALL)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value == value


class _Expression:
    TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
                       r"|(?P<op>&&|\|\||==|!=|<=|>=|[!<>().,\[\]])|(?P<name>[A-Za-z_][\w-]*))")

    def __init__(self, source: str, contexts: dict[str, Any]) -> None:
        self.tokens, position = [], 0
        source = source.strip()
        while position < len(source):
            found = self.TOKEN.match(source, position)
            assert found and found.end() > position, f"cannot read {source[position:]!r}"
            kind = found.lastgroup
            self.tokens.append((kind, found.group(kind)))
            position = found.end()
        self.at, self.contexts, self.skipping = 0, contexts, 0  # skipping: read, do not call (short-circuit)

    def value(self) -> Any:
        result = self._or()
        assert self.at == len(self.tokens), f"unread: {self.tokens[self.at:]}"
        return result

    def _peek(self, *ops: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at][0] == "op" and self.tokens[self.at][1] in ops

    def _take(self) -> tuple[str, str]:
        self.at += 1
        return self.tokens[self.at - 1]

    def _or(self) -> Any:
        left = self._and()
        while self._peek("||"):
            self._take()
            left = left if _truthy(left) and self._skip(self._and) is None else self._and()
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek("&&"):
            self._take()
            left = self._compare() if _truthy(left) else self._skip(self._compare) or left
        return left

    def _skip(self, part: Any) -> None:
        self.skipping += 1
        part()
        self.skipping -= 1

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek("==", "!="):
            op = self._take()[1]
            right = self._unary()
            same = (left.lower() == right.lower()) if isinstance(left, str) and isinstance(right, str) \
                else (left == right or _text(left) == _text(right) and None not in (left, right))
            left = same if op == "==" else not same
        return left

    def _unary(self) -> Any:
        if self._peek("!"):
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "op" and text == "(":
            value = self._or()
            assert self._take() == ("op", ")")
            return value
        assert kind == "name", f"unexpected {text!r}"
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek("("):
            self._take()
            args = []
            while not self._peek(")"):
                args.append(self._or())
                if self._peek(","):
                    self._take()
            self._take()
            return None if self.skipping else self._call(text, args)
        value: Any = self.contexts.get(text)
        while self._peek(".", "["):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = self._or()
                self._take()
            value = value.get(key) if isinstance(value, dict) else None
        return value

    @staticmethod
    def _call(name: str, args: list[Any]) -> Any:
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: _text(args[1 + int(m.group(1))]), args[0])
        if name == "startsWith":
            return _text(args[0]).lower().startswith(_text(args[1]).lower())
        if name == "fromJSON":
            return json.loads(args[0])
        if name in ("failure", "cancelled", "success", "always"):
            return name != "cancelled"
        raise AssertionError(f"function {name} is not known to this evaluator")


def test_the_expression_evaluator_reads_github_expressions():
    contexts = {"inputs": {"model-name": "churn", "runs-on": '["a", "b"]'}, "github": {"event_name": "push"}}
    assert evaluate("x-${{ inputs.model-name }}-${{ github.missing }}", contexts) == "x-churn-"
    assert evaluate("${{ github.event_name == 'PUSH' && 'yes' || 'no' }}", contexts) == "yes"
    assert evaluate("${{ startsWith(inputs.runs-on, '[') && fromJSON(inputs.runs-on) || 'x' }}", contexts) == ["a", "b"]
    assert evaluate("${{ format('{0}-v{1}', inputs.model-name, 3) }}", contexts) == "churn-v3"
    assert evaluate("${{ !(github.event_name != 'push') }}", contexts) is True


# --- concurrency: one group per kind of run, nothing queued cancelled silently ------------------------


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _triggers(workflow: dict[str, Any]) -> list[str]:
    on = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on` as True
    return [on] if isinstance(on, str) else list(on)


def _groups(workflow: dict[str, Any], contexts: dict[str, Any]) -> list[tuple[str, bool]]:
    """Every concurrency group of a workflow (workflow- and job-level) with its cancel-in-progress."""
    found = []
    for holder in [workflow, *workflow.get("jobs", {}).values()]:
        spec = holder.get("concurrency")
        if spec is None:
            continue
        spec = spec if isinstance(spec, dict) else {"group": spec}
        cancel = spec.get("cancel-in-progress", False)
        found.append((evaluate(spec["group"], contexts), cancel if isinstance(cancel, bool) else
                      _truthy(evaluate(str(cancel), contexts))))
    return found


def _run_groups(model: str = "churn", version: str = "7", pr: int = 5) -> dict[str, list[tuple[str, bool]]]:
    """The groups each kind of run takes: the templates' own and, for callers, the reusable workflow's."""
    reusable = _load(REUSABLE)
    kinds: dict[str, list[tuple[str, bool]]] = {}
    for template in TEMPLATES:
        workflow = _load(template)
        triggers = _triggers(workflow)
        event = triggers[0]
        github = {"event_name": event, "event": {"pull_request": {"number": pr}} if event == "pull_request" else
                  {"client_payload": {"name": model, "version": version}}}
        contexts = {"github": github, "vars": {"MODEL_NAME": model},
                    "inputs": {"model-name": model, "version": version}}
        groups = _groups(workflow, contexts)
        for job in workflow["jobs"].values():
            if str(job.get("uses", "")).startswith(f"{OWN_ACTION}/.github/workflows/model-lifecycle.yml"):
                called = {"github": github, "inputs": {k: evaluate(str(v), contexts) for k, v in job["with"].items()}}
                callee = _groups(reusable, called)
                assert callee, "the reusable workflow must set its own concurrency group"
                assert not {g for g, _ in groups} & {g for g, _ in callee}, \
                    f"{template.name}: caller and called workflow share a group (GitHub cancels that as a deadlock)"
                groups += callee
        kind = "pull-request" if "pull_request" in triggers else \
            "promotion" if {"workflow_dispatch", "repository_dispatch"} & set(triggers) and any(
                "uses" in j for j in workflow["jobs"].values()) else template.stem
        kinds.setdefault(kind, []).extend(groups)
    return kinds


def test_each_kind_of_run_has_its_own_concurrency_group():
    kinds = _run_groups()
    assert {"pull-request", "promotion", "retention"} <= set(kinds), kinds
    names = {kind: {g for g, _ in groups} for kind, groups in kinds.items()}
    for kind, groups in names.items():
        assert groups, f"{kind} runs take no concurrency group"
        for other, theirs in names.items():
            assert other == kind or not groups & theirs, f"{kind} and {other} runs share {groups & theirs}"
    # registrations and dispatches: keyed by model AND version, so a newer version never cancels an
    # older one waiting days for its approval; never cancelled in progress
    promotion = {g for g, _ in kinds["promotion"]}
    assert promotion.isdisjoint({g for g, _ in _run_groups(version="8")["promotion"]})
    assert promotion.isdisjoint({g for g, _ in _run_groups(model="fraud")["promotion"]})
    assert not any(cancel for _, cancel in kinds["promotion"])
    # pull requests: keyed by the pull request, whatever the version trained
    pull = {g for g, _ in kinds["pull-request"]}
    assert pull == {g for g, _ in _run_groups(version="8")["pull-request"]}
    assert pull.isdisjoint({g for g, _ in _run_groups(pr=6)["pull-request"]})
    # retention (and any other scheduled job, e.g. monitoring): its own group per model, never cancelled
    assert all("churn" in g and not cancel for g, cancel in kinds["retention"])
    assert {g for g, _ in kinds["retention"]}.isdisjoint({g for g, _ in _run_groups(model="fraud")["retention"]})


# --- the toolkit runs at the called workflow's own commit ---------------------------------------------


def test_the_reusable_workflow_runs_the_toolkit_at_its_own_commit():
    """No tag resolved at run time: each job checks the toolkit out at job.workflow_sha (GHES:
    toolkit-ref) and runs the action from that checkout."""
    workflow = _load(REUSABLE)
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)", REUSABLE.read_text(), re.MULTILINE)
    assert not [ref for ref in uses if ref.startswith(OWN_ACTION)], "the toolkit by tag, resolved at run time"
    call = workflow.get("on", workflow.get(True))["workflow_call"]
    assert call["inputs"]["toolkit-ref"]["default"] == "" and call["inputs"]["toolkit-repository"]["default"] == ""
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        toolkit_steps = [i for i, step in enumerate(steps) if step.get("uses") == f"./{TOOLKIT_PATH}"]
        assert toolkit_steps, f"job {name} does not run the toolkit"
        checkouts = [i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("actions/checkout@")
                     and (step.get("with") or {}).get("path") == TOOLKIT_PATH]
        assert len(checkouts) == 1 and checkouts[0] < toolkit_steps[0], f"job {name}: no toolkit checkout first"
        checkout = steps[checkouts[0]]["with"]
        assert "job.workflow_sha" in checkout["ref"] and "inputs.toolkit-ref" in checkout["ref"]
        assert "job.workflow_repository" in checkout["repository"] and checkout["persist-credentials"] is False
        # the commit is checked before the checkout; only act (env.ACT, never set on GitHub) skips that
        guard = steps[checkouts[0] - 1]
        assert "job.workflow_sha" in guard["env"]["TOOLKIT_REF"] and "env.ACT" in guard["if"]
        for github_sha, toolkit_ref, act, fails in (("a" * 40, "", None, False), ("", "", None, True),
                                                      ("", "b" * 40, None, False), ("", "v1", None, True),
                                                      ("", "", "true", False)):
            contexts = {"job": {"workflow_sha": github_sha}, "inputs": {"toolkit-ref": toolkit_ref},
                        "env": {"ACT": act}}
            runs = _truthy(evaluate(guard["if"], contexts))
            ref = evaluate(guard["env"]["TOOLKIT_REF"], contexts)
            result = subprocess.run(["bash", "-c", guard["run"]], capture_output=True, text=True,
                                    env={"TOOLKIT_REF": _text(ref), "PATH": "/usr/bin:/bin"}) if runs else None
            assert (result is not None and result.returncode != 0) == fails, (github_sha, toolkit_ref, act)


# --- the production credential lives in the production environment only -------------------------------


def test_only_the_approved_promote_job_holds_the_production_credential():
    workflow = _load(REUSABLE)
    call = workflow.get("on", workflow.get(True))["workflow_call"]
    # an environment secret cannot be passed by a caller; declaring it would invite a repository secret
    assert not any("PRODUCTION" in name.upper() for name in call["secrets"])
    for name, job in workflow["jobs"].items():
        text = yaml.safe_dump(job)
        if name == "promote":
            assert job["environment"] == "${{ inputs.environment }}"
            promote = next(s for s in job["steps"] if s.get("id") == "promote")["with"]
            assert promote["tracking-token"] == "${{ secrets.MLFLOW_PRODUCTION_TOKEN }}"
            assert "secrets.mlflow-tracking-token }}" not in text.replace("!= ''", "")
        else:
            assert "environment" not in job and "MLFLOW_PRODUCTION" not in text, f"job {name} holds it"
    for template in TEMPLATES:  # the templates never pass it
        assert "MLFLOW_PRODUCTION" not in "".join(l.split("#")[0] for l in template.read_text().splitlines())


# --- runs-on is an input ------------------------------------------------------------------------------


def test_runs_on_is_an_input_a_label_or_a_json_list():
    workflow = _load(REUSABLE)
    spec = workflow.get("on", workflow.get(True))["workflow_call"]["inputs"]["runs-on"]
    assert spec["type"] == "string" and spec["default"] == "ubuntu-latest"
    for name, job in workflow["jobs"].items():
        for given, wanted in (("ubuntu-latest", "ubuntu-latest"), ("gpu-runner", "gpu-runner"),
                              ('["self-hosted", "linux"]', ["self-hosted", "linux"])):
            assert evaluate(job["runs-on"], {"inputs": {"runs-on": given}}) == wanted, name
