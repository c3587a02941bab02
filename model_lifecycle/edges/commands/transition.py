"""Move a model version between lifecycle states: staging (@challenger), production (@champion), archived.

Production promotion is compare-and-set (--expect-champion), refuses a version that is not the
challenger unless --force with a reason, keeps the old champion reachable as @previous-champion,
and records who approved it in the audit record.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/transition.py --model churn --version 7 --to staging --reason "gate passed"
  python scripts/transition.py --model churn --version 7 --to production --expect-champion 5 \\
      --approver alice --approval-source github-environment
  python scripts/transition.py --model churn --version 3 --to archived --reason "superseded"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("transition.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", required=True, help="The model version to move.")
    parser.add_argument(
        "--to",
        required=True,
        choices=("staging", "production", "archived"),
        help="Target state: staging sets @challenger, production moves @champion, archived retires.",
    )
    parser.add_argument(
        "--expect-champion",
        metavar="N|none",
        help="Compare-and-set: the champion version you saw ('none' if there was none). "
        "If it moved since, nothing changes and the exit code is 1.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="Promote a version that is not the challenger (or stage an archived one); needs --reason.",
    )
    cli.add_actor_flags(parser)
    parser.add_argument("--approver", help="Who approved a production promotion (recorded in the audit record).")
    parser.add_argument(
        "--approval-source",
        choices=("local", "github-environment"),
        help="Where the approval was given: a local confirmation or a GitHub environment review.",
    )
    parser.add_argument("--approval-comment", help="The approver's comment, recorded with the approval.")
    parser.add_argument(
        "--github-approval",
        metavar="ENVIRONMENT",
        help="Confirm through GitHub's API that this workflow run ($GITHUB_RUN_ID) was approved for "
        "ENVIRONMENT, and record that approver, comment and time.",
    )
    parser.add_argument(
        "--allow-unprotected-environment",
        action="store_true",
        help="With --github-approval: proceed when the environment has no required reviewers "
        "(require-approval: false). Without it such a promotion is refused.",
    )
    parser.add_argument("--approval-time", help="When the approval was given (ISO 8601).")
    parser.add_argument(
        "--evidence",
        action="append",
        default=[],
        metavar="KIND=DIGEST",
        help="Digest of evidence behind the change, e.g. verdict=sha256:...; repeatable.",
    )
    parser.add_argument(
        "--skip-card-check",
        action="store_true",
        help="Promote without the model-card completeness gate (recorded in the audit record; needs --reason).",
    )
    parser.add_argument(
        "--legacy-stages",
        action="store_true",
        help="Also mirror to MLflow's deprecated stages (Staging/Production/Archived).",
    )
    cli.add_alias_flags(parser)
    return parser


def parse_evidence(items: Sequence[str]) -> dict[str, str]:
    evidence: dict[str, str] = {}
    for item in items:
        kind, sep, digest = item.partition("=")
        if not sep or not kind.strip() or not digest.strip():
            raise BadInput(f"--evidence {item!r} must look like KIND=DIGEST, e.g. verdict=sha256:...")
        evidence[kind.strip()] = digest.strip()
    return evidence


def approval_from(args: Any) -> dict[str, Any] | None:
    if not (args.approver or args.approval_source or args.approval_comment):
        return None
    return {
        "source": args.approval_source or "local",
        "comment": args.approval_comment,
        "time": args.approval_time,
    }


def github_approval(args: Any) -> dict[str, Any]:
    """The human gate: the GitHub environment's required reviewers must have approved this run."""
    import os

    from model_lifecycle.adapters import github as github_api
    from model_lifecycle.errors import Refused

    repo, run_id = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        raise BadInput("--github-approval needs $GITHUB_REPOSITORY and $GITHUB_RUN_ID (run it inside GitHub Actions)")
    gh = github_api.connect()
    environment = args.github_approval
    if not github_api.environment_protected(gh, repo, environment):
        if not args.allow_unprotected_environment:
            raise Refused(
                f"environment {environment!r} of {repo} has no required reviewers, so nobody approved this "
                "promotion; nothing was changed",
                hint="add reviewers (setup_environments.py), or set require-approval: false to accept that",
            )
        return {"source": "github-environment", "environment": environment, "approver": None,
                "comment": "environment has no required reviewers (require-approval: false)"}
    approvals = github_api.run_approvals(gh, repo, run_id, environment)
    if not approvals:
        raise Refused(
            f"no approval of run {run_id} for environment {environment!r} was found; nothing was changed",
            hint="a required reviewer must approve the deployment in the run's page",
        )
    latest = approvals[-1]
    return {"source": "github-environment", "environment": environment, "approver": latest.user,
            "comment": latest.comment or None, "time": latest.time or None, "run_id": run_id}


def card_gate(client: Any, args: Any, version: str, evidence: dict[str, str]) -> dict[str, Any]:
    """Production needs a complete, current model card; its sha256 becomes evidence of the promotion."""
    from model_lifecycle.core import cards
    from model_lifecycle.errors import Refused

    if args.skip_card_check:
        if not args.reason:
            raise BadInput("--skip-card-check needs --reason: say why the card gate is bypassed")
        return {"card_check": "skipped"}
    card, problems = cards.check_version(client, args.model, version)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise Refused(
            f"the model card of {args.model!r} v{version} is not ready: {shown}; nothing was changed",
            hint="complete model-card.yml, run model_card.py build, then promote again",
        )
    evidence["card"] = cards.sha256(card)
    return {"card_check": "passed"}


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import lifecycle
    from model_lifecycle.adapters import registry

    version = registry.parse_version(args.version)
    names = lifecycle.AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias).validated()
    expect = args.expect_champion
    if expect is not None:
        expect = lifecycle.NO_CHAMPION if expect.strip().lower() == "none" else registry.parse_version(
            expect, "--expect-champion"
        )
    evidence = parse_evidence(args.evidence)
    client = registry.connect(args.tracking_uri)
    common = {"reason": args.reason, "actor": args.actor, "legacy_stages": args.legacy_stages}
    if args.to == "staging":
        return lifecycle.stage(client, args.model, version, names, evidence=evidence, force=args.force, **common)
    if args.to == "production":
        lifecycle.require_reason_for_force(args.force, args.reason)  # usage errors before any look-up
        approval = github_approval(args) if args.github_approval else approval_from(args)
        details = card_gate(client, args, version, evidence)
        return lifecycle.promote(
            client, args.model, version, names, expect_champion=expect, force=args.force,
            approver=(approval or {}).pop("approver", None) or args.approver, approval=approval, evidence=evidence,
            details=details, **common,
        )
    return lifecycle.archive(client, args.model, version, names, **common)


def render(result: dict[str, Any]) -> None:
    print(("✔ " if result["changed"] else "= ") + result["message"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

