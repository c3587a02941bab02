"""The ``model-lifecycle`` command: one subcommand per step, each a module of ``edges.commands``.

The table below is all ``--help`` needs, so listing the steps imports nothing but this file; a
step's module is imported only when that step runs. ``scripts/<step>.py`` hands its argv here too.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple, Sequence

from model_lifecycle import __version__


class Step(NamedTuple):
    module: str  # under model_lifecycle.edges
    script: str  # scripts/<script>.py, the name the README and the workflows use
    summary: str


STEPS: dict[str, Step] = {
    "train": Step("commands.train", "train", "Example training: log a classifier with its data lineage."),
    "register": Step("commands.register", "register", "Register a logged model as a version, with lineage tags."),
    "check": Step("commands.check_model", "check_model", "Model checks and the repository's own tests."),
    "evaluate": Step("commands.evaluate", "evaluate", "Evaluate one model on the hold-out, overall and by slice."),
    "compare": Step("commands.compare_baseline", "compare_baseline", "The gate: candidate against @champion."),
    "card": Step("commands.model_card", "model_card", "Model cards: init, build, check, diff, export."),
    "transition": Step("commands.transition", "transition", "Stage, promote (compare-and-set) or archive a version."),
    "stage-check": Step("commands.stage_check", "stage_check",
                        "Staging deployment: serving parity, bounded load, malformed requests."),
    "rollback": Step("commands.rollback", "rollback", "Move @champion back to the recorded previous champion."),
    "archive": Step("commands.archive", "archive", "Retention: archive old versions, never a recent champion."),
    "verify-rollout": Step("commands.verify_rollout", "verify_rollout",
                           "After a promotion: every serving endpoint reports the new @champion, or roll back."),
    "monitor": Step("commands.monitor", "monitor",
                    "Monitoring: a production window against the reference profile; roll back on a breach."),
    "release-candidate": Step("commands.release_candidate", "release_candidate",
                              "A merged pull request's candidate: send it to the registration workflow."),
    "status": Step("commands.status", "status", "Versions, aliases, lineage and the audit record."),
    "notify": Step("commands.notify", "notify", "Tell the team: job summary, PR comment, approval issue, webhook."),
    "setup-environments": Step("commands.setup_environments", "setup_environments",
                               "Create the staging and production environments with required reviewers."),
    "serve": Step("commands.serve", "serve", "Serve @champion with MLflow's scoring app; follow the alias; capture."),
    "relay": Step("commands.relay", "relay", "Registration relay: MLflow webhooks to repository_dispatch."),
    "action": Step("action", "action_entry", "Entry point of the composite action (inputs from LIFECYCLE_*)."),
    "demo": Step("demo", "demo", "End-to-end demo on a local MLflow server."),
}
BY_SCRIPT = {step.script: name for name, step in STEPS.items()}


def _usage() -> str:
    width = max(map(len, STEPS))
    lines = ["usage: model-lifecycle STEP [options]   (model-lifecycle STEP --help for a step's options)",
             "", "Take an MLflow model version from registration to production and back, audited.", "", "steps:"]
    lines += [f"  {name:<{width}}  {step.summary}" for name, step in STEPS.items()]
    lines += ["", "Exit codes: 0 success, 1 refused (gate failed, compare-and-set lost), 2 bad input,",
              "3 an outside service failed after bounded retries."]
    return "\n".join(lines)


def run_step(name: str, argv: Sequence[str]) -> int:
    """Run one step's command line; returns its exit code."""
    module = importlib.import_module(f"model_lifecycle.edges.{STEPS[name].module}")
    return module.main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"model-lifecycle {__version__}")
        return 0
    if args[0] not in STEPS:
        print(f"error: unknown step {args[0]!r}; one of: {', '.join(STEPS)}", file=sys.stderr)
        return 2
    return run_step(args[0], args[1:])


def script_main(script: str) -> None:
    """What ``scripts/<script>.py`` runs: the same command as ``model-lifecycle <step>``."""
    raise SystemExit(run_step(BY_SCRIPT[script], sys.argv[1:]))


def console_main() -> None:
    raise SystemExit(main())
