"""Roll production back: move @champion to the previous champion recorded in the audit record.

The target is the champion before the current one *as recorded* (not "version minus one"), or an
earlier recorded champion with --to-version. Refuses cleanly when there is none.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/rollback.py --model churn --reason "error rate doubled after v7"
  python scripts/rollback.py --model churn --to-version 4 --reason "back to the last known good"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("rollback.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--to-version", type=registry.version_arg, help="An earlier recorded champion to return to (default: the previous one).")
    parser.add_argument(
        "--legacy-stages", action="store_true", help="Also mirror to MLflow's deprecated stages."
    )
    cli.add_actor_flags(parser, reason_required=True)
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api import lifecycle as api

    return api.rollback(api.RollbackRequest(
        args.model, args.reason, to_version=args.to_version, actor=args.actor, legacy_stages=args.legacy_stages,
        aliases=cli.alias_names(args), tracking_uri=args.tracking_uri,
    ))


def render(result: dict[str, Any]) -> None:
    print("✔ " + result["message"])


main = cli.command(build_parser, call, render)
