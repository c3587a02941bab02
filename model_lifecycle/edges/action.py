"""Entry point of the composite action: one `command` input names the lifecycle step.

Inputs arrive only as environment variables (``LIFECYCLE_<INPUT>``; no ``${{ }}`` in any ``run:``),
are validated here (a composite action does not enforce ``required: true``), and become the
request of one API call: no argv, no shell string, so a model name full of shell metacharacters
stays data. Outputs (verdict, version, model-uri, report, card-status, ...) go to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from model_lifecycle import settings
from model_lifecycle.edges import common as cli
from model_lifecycle.errors import EXIT_OK, BadInput, ToolkitError

# command -> inputs it cannot run without
REQUIRED = {
    "check": ("model-name", "version"), "evaluate": ("model-name", "version"), "compare": ("model-name", "version"),
    "card": ("model-name", "version"), "stage": ("model-name", "version"), "stage-check": ("model-name", "version"),
    "promote": ("model-name", "version"), "verify-rollout": ("model-name",),
    "rollback": ("model-name", "reason"), "archive": ("model-name",), "monitor": ("model-name", "window"),
    "notify": ("model-name", "event"),
    "status": ("model-name",), "release-candidate": ("model-name", "pr-number"),
}
COMMANDS = tuple(REQUIRED)
_DIGITS = re.compile(r"[0-9]+")


def value(name: str) -> str:
    """An input as the action passed it: LIFECYCLE_<NAME-IN-UPPER-SNAKE-CASE>, stripped."""
    return (os.environ.get("LIFECYCLE_" + name.upper().replace("-", "_")) or "").strip()


def flag(name: str, default: bool = False) -> bool:
    text = value(name).lower()
    if not text:
        return default
    if text not in ("true", "false"):
        raise BadInput(f"input {name} must be true or false, got {text!r}")
    return text == "true"


def number(name: str, default: str, minimum: float | None = None) -> float:
    text = value(name) or default
    try:
        parsed = float(text)
    except ValueError:
        raise BadInput(f"input {name} must be a number, got {text!r}") from None
    if parsed != parsed or parsed in (float("inf"), float("-inf")):
        raise BadInput(f"input {name} must be a finite number, got {text!r}")
    if minimum is not None and parsed < minimum:
        raise BadInput(f"input {name} must be {minimum:g} or more, got {text!r}")
    return parsed


def write_outputs(outputs: dict[str, str]) -> None:
    path = settings.GITHUB_OUTPUT.get()
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        for key, text in outputs.items():
            delimiter = f"EOF_{uuid.uuid4().hex}"  # multi-line safe, and a value cannot end the block
            handle.write(f"{key}<<{delimiter}\n{text}\n{delimiter}\n")


@dataclass(frozen=True)
class Inputs:
    """The inputs every command shares, read once."""

    model: str
    version: str
    out: Path  # where files for later steps go ($RUNNER_TEMP/model-lifecycle)
    policy: str
    holdout: str | None
    reason: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}" if self.version else ""


def _calls(i: Inputs) -> dict[str, Callable[[], Any]]:
    """command -> the API call it makes (imported only when that command runs)."""
    from model_lifecycle.api import gate, lifecycle, monitor, notify, release, retention, rollout, stage_check, status

    return {
        "check": lambda: gate.check(gate.CheckRequest(
            i.uri, i.policy, i.holdout, tests_command=value("test-command") or None,
            output=str(i.out / "checks.json"))),
        "evaluate": lambda: gate.evaluate(gate.EvaluateRequest(
            i.uri, i.policy, i.holdout, output=str(i.out / "evaluation.json"), progress=cli.Progress())),
        "compare": lambda: gate.compare(gate.CompareRequest(
            i.model, i.version, i.policy, holdout=i.holdout, output=str(i.out / "verdict.json"),
            report=str(i.out / "report.md"), progress=cli.Progress())),
        "card": lambda: _card(i),
        "stage-check": lambda: stage_check.stage_check(stage_check.StageCheckRequest(
            i.model, i.version, i.policy, i.holdout, output=str(i.out / "stage-check.json"))),
        "verify-rollout": lambda: rollout.verify_rollout(rollout.RolloutRequest(
            i.model, i.version or None, policy=i.policy, require_endpoints=False)),
        "stage": lambda: lifecycle.stage(lifecycle.StageRequest(i.model, i.version, reason=i.reason)),
        "promote": lambda: lifecycle.promote(lifecycle.PromoteRequest(
            i.model, i.version, expect_champion=value("expect-champion") or None, reason=i.reason,
            github_environment=value("environment") or "production",
            allow_unprotected_environment=not flag("require-approval", True))),
        "rollback": lambda: lifecycle.rollback(lifecycle.RollbackRequest(
            i.model, i.reason or "", expect_champion=value("expect-champion") or None,
            evidence={k: v for k, v in (("monitoring_run", value("monitoring-run")),
                                        ("findings", value("findings-sha256"))) if v},
            refuse_archived=bool(value("monitoring-run")))),
        "archive": lambda: retention.apply_retention(_retention_request(i)),
        "monitor": lambda: monitor.monitor(monitor.MonitorRequest(
            i.model, value("window"), i.policy, version=i.version or None, labels=value("labels") or None,
            since=value("since") or None, until=value("until") or None, output=str(i.out / "monitoring.json"),
            report=str(i.out / "monitoring.md"), act=flag("act", True) and not flag("dry-run"),
            log=not flag("dry-run"),
            repo=settings.GITHUB_REPOSITORY.get(), webhook_url=settings.WEBHOOK_URL.get(), progress=cli.Progress())),
        "notify": lambda: notify.notify(notify.NotifyRequest(
            model=i.model, version=i.version or None, event=value("event"), report=value("report") or None,
            card_diff=value("card-diff") or None, pr=_pr_number(), request_approval=flag("request-approval"),
            repo=settings.GITHUB_REPOSITORY.get(), webhook_url=settings.WEBHOOK_URL.get())),
        "status": lambda: status.status(status.StatusRequest(i.model, audit=True)),
        "release-candidate": lambda: release.release_candidate(release.ReleaseRequest(
            i.model, str(_pr_number() or ""), repo=settings.GITHUB_REPOSITORY.get(), head_sha=_merged_head(),
            dry_run=flag("dry-run"), reason=value("reason") or None)),
    }


def _retention_request(i: Inputs) -> Any:
    """Retention by the inputs; the stable period and the monitoring experiment from the policy file
    when the repository has one."""
    from model_lifecycle.api import retention
    from model_lifecycle.core import policy as policies

    stable_days, min_windows, experiment, keep, older = None, 1, "model-monitoring", "5", "30"
    if Path(i.policy).is_file():  # the inputs, when given, override the policy's retention section
        policy = policies.load(i.policy)
        stable_days, min_windows = policy.retention.stable_days, policy.retention.min_windows
        experiment = policy.monitoring.experiment
        keep, older = str(policy.retention.keep_last), f"{policy.retention.older_than_days:g}"
    return retention.RetentionRequest(
        i.model, _count("keep-last", keep), number("older-than-days", older, minimum=0), dry_run=flag("dry-run"),
        reason=i.reason, stable_days=stable_days, min_windows=min_windows, monitoring_experiment=experiment)


def _count(name: str, default: str) -> int:
    text = value(name) or default
    if not _DIGITS.fullmatch(text):  # not str.isdigit(): it accepts '²', which int() refuses
        raise BadInput(f"input {name} must be a whole number, 0 or more, got {text!r}")
    return int(text)


def _pr_number() -> int | None:
    text = value("pr-number")
    if not text:
        return None
    if not _DIGITS.fullmatch(text) or len(text) > 10 or not 0 < int(text) < 2**31:
        raise BadInput(f"input pr-number must be a pull request number, got {text!r}")
    return int(text)


def _merged_head() -> str | None:
    """The head commit of the pull request this run's event closed (its payload's pull_request.head.sha)."""
    from model_lifecycle.core import lineage

    return lineage.pull_request()[1]


def _card(i: Inputs) -> Any:
    """Build the card from the repository's model-card.yml, diff it against the champion, check it."""
    from model_lifecycle.api import cards

    request = cards.CardRequest(i.model, i.version, card=value("card") or "model-card.yml",
                                output=str(i.out / "card-diff.md"))
    cards.build_card(request)
    diff = cards.diff_card(request)  # the file is for the notification step
    cli.append_step_summary(diff.markdown or "")
    return cards.check_card(request)


def _outputs(command: str, i: Inputs, result: Any) -> dict[str, str]:
    outputs = {"version": i.version, "model-uri": i.uri}
    if command == "compare":
        passed = getattr(result, "passed", None)
        outputs["verdict"] = "error" if passed is None else "pass" if passed else "fail"
        outputs["report"] = str(i.out / "report.md")
        outputs["champion"] = getattr(result, "baseline", None) or "none"
    if command == "card":
        outputs["card-status"] = "complete" if getattr(result, "complete", False) else "incomplete"
        outputs["card-diff"] = str(i.out / "card-diff.md")
    if command == "release-candidate":
        outputs["version"] = getattr(result, "version", None) or ""
        outputs["model-uri"] = f"models:/{i.model}/{outputs['version']}" if outputs["version"] else ""
    if command == "monitor":
        outputs["version"] = getattr(result, "version", None) or i.version
        outputs["model-uri"] = f"models:/{i.model}/{outputs['version']}" if outputs["version"] else ""
        outputs["health"] = getattr(result, "status", None) or "error"
        outputs["monitor-action"] = getattr(result, "action", None) or "none"
        outputs["report"] = str(i.out / "monitoring.md")
        outputs["rollback-reason"] = getattr(result, "rollback_reason", None) or ""
        outputs["monitoring-run"] = getattr(result, "monitoring_run_id", None) or ""
        outputs["findings-sha256"] = getattr(result, "findings_sha256", None) or ""
    return outputs


def _validated() -> tuple[str, Inputs]:
    command = value("command")
    if command not in COMMANDS:
        raise BadInput(
            f"input command must be one of {', '.join(COMMANDS)}; got {command!r}" if command
            else f"input command must be set to one of {', '.join(COMMANDS)}"
        )
    for name in REQUIRED[command]:
        if not value(name):
            raise BadInput(f"input {name} must be set when command is {command}")
    version = ""
    if value("version"):  # validated (1 to 2**31-1: MLflow's int) before it is used in any URI or request
        from model_lifecycle.adapters.registry import parse_version

        version = parse_version(value("version"), "input version")
    expect = value("expect-champion")
    if command in ("promote", "rollback") and expect and expect.lower() != "none":
        from model_lifecycle.adapters.registry import parse_version

        parse_version(expect, "input expect-champion")
    if command == "archive":
        _count("keep-last", "5")
        number("older-than-days", "30", minimum=0)
    if command == "notify":
        _pr_number()
    if command == "monitor":
        flag("dry-run"), flag("act", True)
    if value("tracking-uri"):
        os.environ[settings.TRACKING_URI.name] = value("tracking-uri")
    if command != "notify" and not settings.TRACKING_URI.get():
        raise BadInput(f"input tracking-uri must be set when command is {command}")
    out = Path(value("output-dir") or settings.RUNNER_TEMP.get() or ".") / "model-lifecycle"
    out.mkdir(parents=True, exist_ok=True)
    return command, Inputs(value("model-name"), version, out, value("policy") or "model-policy.yml",
                           value("holdout") or None, value("reason") or None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("action_entry.py", __doc__.splitlines()[0],
                             "  LIFECYCLE_COMMAND=status LIFECYCLE_MODEL_NAME=churn python scripts/action_entry.py\n",
                             shared=False)
    parser.parse_args(argv)
    code, validated, error = cli.execute(_validated)
    if error is not None:
        cli.report_error(error.title, error.one_line(), error.exit_code)
        return code
    command, inputs = validated
    code, result, error = cli.execute(_calls(inputs)[command])
    if result is None and isinstance(error, ToolkitError):
        result = error.result
    if result is not None:  # the step's result goes to the log (stderr); its summary to the job summary
        payload = cli.as_payload(result)
        payload["ok"] = code == EXIT_OK
        print(json.dumps(payload, indent=2, sort_keys=True, default=str), file=sys.stderr)
        cli.append_step_summary(getattr(result, "markdown_summary", None) or "")
    if error is not None:
        cli.report_error(error.title, error.one_line(), error.exit_code)
    write_outputs(_outputs(command, inputs, result))
    return code


if __name__ == "__main__":  # python -m model_lifecycle.edges.action, as action.yml runs it
    raise SystemExit(main())
