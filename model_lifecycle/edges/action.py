"""Entry point of the composite action: one `command` input names the lifecycle step.

Inputs arrive only as environment variables (``LIFECYCLE_<INPUT>``; no ``${{ }}`` in any ``run:``),
are validated here (a composite action does not enforce ``required: true``), and become the argv of
a step script: never a shell string, so a model name full of shell metacharacters stays data.
Outputs (verdict, version, model-uri, report, card-status) go to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput

COMMANDS = ("check", "evaluate", "compare", "card", "stage", "promote", "rollback", "archive", "notify", "status")
# command -> inputs it cannot run without
REQUIRED = {
    "check": ("model-name", "version"), "evaluate": ("model-name", "version"), "compare": ("model-name", "version"),
    "card": ("model-name", "version"), "stage": ("model-name", "version"), "promote": ("model-name", "version"),
    "rollback": ("model-name", "reason"), "archive": ("model-name",), "notify": ("model-name", "event"),
    "status": ("model-name",),
}


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


def write_outputs(outputs: dict[str, str]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        for key, text in outputs.items():
            delimiter = f"EOF_{uuid.uuid4().hex}"  # multi-line safe, and a value cannot end the block
            handle.write(f"{key}<<{delimiter}\n{text}\n{delimiter}\n")


def _step(module: Any, argv: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a step script in-process; its result goes to the log (stderr), the outputs use it."""
    code, payload = cli.call_step(module, argv)
    print(json.dumps(payload, indent=2, sort_keys=True, default=str), file=sys.stderr)
    return code, payload


def run_command(command: str) -> tuple[int, dict[str, str]]:
    from model_lifecycle.edges.commands import archive
    from model_lifecycle.edges.commands import check_model
    from model_lifecycle.edges.commands import compare_baseline
    from model_lifecycle.edges.commands import evaluate
    from model_lifecycle.edges.commands import model_card
    from model_lifecycle.edges.commands import notify
    from model_lifecycle.edges.commands import rollback
    from model_lifecycle.edges.commands import status
    from model_lifecycle.edges.commands import transition

    model, version = value("model-name"), value("version")
    out = Path(value("output-dir") or os.environ.get("RUNNER_TEMP") or ".") / "model-lifecycle"
    out.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{model}/{version}"
    outputs = {"version": version, "model-uri": uri if version else ""}
    policy = ["--policy", value("policy") or "model-policy.yml"]
    holdout = ["--holdout", value("holdout")] if value("holdout") else []
    reason = ["--reason", value("reason")] if value("reason") else []
    base = ["--model", model]

    handlers: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "check": lambda: _step(check_model, ["--model-uri", uri, *policy, *holdout, "--output", str(out / "checks.json"),
                                             *(["--tests-command", value("test-command")] if value("test-command") else [])]),
        "evaluate": lambda: _step(evaluate, ["--model-uri", uri, *policy, *holdout, "--output", str(out / "evaluation.json")]),
        "compare": lambda: _step(compare_baseline, [*base, "--candidate", version, *policy, *holdout,
                                                    "--output", str(out / "verdict.json"), "--report", str(out / "report.md")]),
        "stage": lambda: _step(transition, [*base, "--version", version, "--to", "staging", *reason, *_verdict_evidence(out)]),
        "promote": lambda: _step(transition, [
            *base, "--version", version, "--to", "production", *reason,
            *(["--expect-champion", value("expect-champion")] if value("expect-champion") else []),
            "--github-approval", value("environment") or "production",
            *([] if flag("require-approval", True) else ["--allow-unprotected-environment"]),
        ]),
        "rollback": lambda: _step(rollback, [*base, *reason]),
        "archive": lambda: _step(archive, [*base, "--keep-last", value("keep-last") or "5",
                                           "--older-than", value("older-than-days") or "30",
                                           *(["--dry-run"] if flag("dry-run") else []), *reason]),
        "notify": lambda: _step(notify, [*base, "--event", value("event"), *(["--version", version] if version else []),
                                         *(["--report", value("report")] if value("report") else []),
                                         *(["--card-diff", value("card-diff")] if value("card-diff") else []),
                                         *(["--pr", value("pr-number")] if value("pr-number") else []),
                                         *(["--request-approval"] if flag("request-approval") else [])]),
        "status": lambda: _step(status, [*base, "--audit"]),
        "card": lambda: _card(model_card, base, version, out),
    }
    code, payload = handlers[command]()
    if command == "compare":
        outputs["verdict"] = "pass" if payload.get("passed") else "fail" if "passed" in payload else "error"
        outputs["report"] = str(out / "report.md")
        outputs["champion"] = payload.get("baseline") or "none"
    if command == "card":
        outputs["card-status"] = "complete" if payload.get("complete") else "incomplete"
        outputs["card-diff"] = str(out / "card-diff.md")
    return code, outputs


def _verdict_evidence(out: Path) -> list[str]:
    """The verdict written by the compare step of this job, if any, as evidence of the staging."""
    from model_lifecycle.core import verdict

    file = out / "verdict.json"
    if not file.is_file():
        return []
    return ["--evidence", f"verdict={verdict.digest(json.loads(file.read_text()))}"]


def _card(model_card: Any, base: list[str], version: str, out: Path) -> tuple[int, dict[str, Any]]:
    """Build the card from the repository's model-card.yml, diff it against the champion, check it."""
    card = value("card") or "model-card.yml"
    code, built = _step(model_card, ["build", *base, "--version", version, "--card", card])
    if code != EXIT_OK:
        return code, built
    _step(model_card, ["diff", *base, "--version", version, "--output", str(out / "card-diff.md")])
    return _step(model_card, ["check", *base, "--version", version])


def _run() -> dict[str, Any]:
    command = value("command")
    if command not in COMMANDS:
        raise BadInput(
            f"input command must be one of {', '.join(COMMANDS)}; got {command!r}" if command
            else f"input command must be set to one of {', '.join(COMMANDS)}"
        )
    for name in REQUIRED[command]:
        if not value(name):
            raise BadInput(f"input {name} must be set when command is {command}")
    if value("version"):  # validated before it is used in any URI or argv
        from model_lifecycle.adapters.registry import parse_version

        parse_version(value("version"), "input version")
    if value("tracking-uri"):
        os.environ["MLFLOW_TRACKING_URI"] = value("tracking-uri")
    if command not in ("notify",) and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise BadInput(f"input tracking-uri must be set when command is {command}")
    code, outputs = run_command(command)
    write_outputs(outputs)
    return {"ok": code == EXIT_OK, "exit_code": code, "command": command, "outputs": outputs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("action_entry.py", __doc__.splitlines()[0], "  LIFECYCLE_COMMAND=status LIFECYCLE_MODEL_NAME=churn python scripts/action_entry.py\n", shared=False)
    parser.parse_args(argv)
    try:
        return cli.run(_run, json_output=False, render=lambda r: None)
    except SystemExit as exc:  # argparse inside a step: already reported
        return int(exc.code or EXIT_BAD_INPUT)



if __name__ == "__main__":  # python -m model_lifecycle.edges.action, as action.yml runs it
    raise SystemExit(main())
