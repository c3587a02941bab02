"""Verified roll-out: every serving endpoint must report the new @champion within a deadline.

With rollout.on_failure: rollback (policy) or --on-failure rollback, an endpoint that keeps the old
version rolls @champion back (audited, compare-and-set). Exit 0 verified, 1 not verified.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/verify_rollout.py --model churn --policy model-policy.yml
  python scripts/verify_rollout.py --model churn --version 7 --endpoint http://serve-a:8080 \\
      --endpoint http://serve-b:8080 --deadline 120 --on-failure rollback
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("verify_rollout.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", help="The version every endpoint must serve (default: the current @champion).")
    parser.add_argument("--endpoint", action="append", default=[], metavar="URL",
                        help="A serving endpoint's base URL; repeatable (default: the policy's rollout.endpoints).")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (its rollout: section).")
    parser.add_argument("--deadline", type=cli.bounded(float, 0, 3600, "--deadline"),
                        help="Seconds each endpoint may take (default: the policy's rollout.deadline_seconds).")
    parser.add_argument("--on-failure", choices=("notify", "rollback"),
                        help="What a missed deadline does (default: the policy's rollout.on_failure).")
    parser.add_argument("--actor", help="Who rolls back, if it comes to that (default: $GITHUB_ACTOR, else user@host).")
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.rollout import RolloutRequest, verify_rollout

    return verify_rollout(RolloutRequest(
        args.model, args.version, tuple(args.endpoint), args.policy, args.deadline, args.on_failure,
        actor=args.actor, aliases=cli.alias_names(args), tracking_uri=args.tracking_uri,
    ))


def render(result: dict[str, Any]) -> None:
    print(f"{'✔ verified' if result['passed'] else '✘ not verified'}: roll-out of {result['model']} v{result['version']}")
    for url, state in result["endpoints"].items():
        print(f"  {'✔' if state['ok'] else '✘'} {url}: serves {state['version'] or 'nothing (no answer)'}")
    if result.get("rolled_back"):
        print(f"  rolled back to v{result['rolled_back_to']}")


main = cli.command(build_parser, call, render)
