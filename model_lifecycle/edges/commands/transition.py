"""Move a model version between lifecycle states: staging (@challenger), production (@champion), archived.

Production promotion is compare-and-set (--expect-champion), refuses a version that is not the
challenger unless --force with a reason, keeps the old champion reachable as @previous-champion,
and records who approved it in the audit record.
"""

from __future__ import annotations

from typing import Any, Sequence

from model_lifecycle.adapters import registry
from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/transition.py --model churn --version 7 --to staging --reason "gate passed"
  python scripts/transition.py --model churn --version 7 --to production --expect-champion 5 \\
      --approver alice --approval-source github-environment
  python scripts/transition.py --model churn --version 3 --to archived --reason "superseded"
"""


def expected_champion(text: str) -> str:
    """argparse ``type=`` of --expect-champion: a version number, or 'none' for no champion."""
    return "none" if text.strip().lower() == "none" else registry.version_arg(text)


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("transition.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", required=True, type=registry.version_arg, help="The model version to move.")
    parser.add_argument(
        "--to",
        required=True,
        choices=("staging", "production", "archived"),
        help="Target state: staging sets @challenger, production moves @champion, archived retires.",
    )
    parser.add_argument(
        "--expect-champion",
        type=expected_champion,
        metavar="N|none",
        help="Compare-and-set: the champion version you saw ('none' if there was none). "
        "If it moved since, nothing changes and the exit code is 1.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="Override the gate's missing, failed or stale verdict, promote a version that is not the "
             "challenger, or stage an archived one; needs --reason (recorded).",
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


def call(args: Any) -> Any:
    from model_lifecycle.api import lifecycle as api

    common = {"reason": args.reason, "actor": args.actor, "legacy_stages": args.legacy_stages,
              "aliases": cli.alias_names(args), "tracking_uri": args.tracking_uri}
    evidence = parse_evidence(args.evidence)
    if args.to == "staging":
        return api.stage(api.StageRequest(args.model, args.version, force=args.force, evidence=evidence, **common))
    if args.to == "production":
        approval = None
        if args.approver or args.approval_source or args.approval_comment:
            approval = api.Approval(args.approver, args.approval_source or "local", args.approval_comment,
                                    args.approval_time)
        return api.promote(api.PromoteRequest(
            args.model, args.version, expect_champion=args.expect_champion, force=args.force, approval=approval,
            github_environment=args.github_approval, allow_unprotected_environment=args.allow_unprotected_environment,
            evidence=evidence, skip_card_check=args.skip_card_check, **common,
        ))
    return api.archive(api.ArchiveRequest(args.model, args.version, **common))


def render(result: dict[str, Any]) -> None:
    print(("✔ " if result["changed"] else "= ") + result["message"])


main = cli.command(build_parser, call, render)
