"""Roll production back: move @champion to the previous champion recorded in the audit record.

The target is the champion before the current one *as recorded* (not "version minus one"), or an
earlier recorded champion with --to-version. Refuses cleanly when there is none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/rollback.py --model churn --reason "error rate doubled after v7"
  python scripts/rollback.py --model churn --to-version 4 --reason "back to the last known good"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("rollback.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--to-version", help="An earlier recorded champion to return to (default: the previous one).")
    parser.add_argument(
        "--legacy-stages", action="store_true", help="Also mirror to MLflow's deprecated stages."
    )
    cli.add_actor_flags(parser, reason_required=True)
    cli.add_alias_flags(parser)
    return parser


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import lifecycle
    from model_lifecycle.adapters import registry

    names = lifecycle.AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias).validated()
    to_version = registry.parse_version(args.to_version, "--to-version") if args.to_version else None
    client = registry.connect(args.tracking_uri)
    return lifecycle.rollback(
        client, args.model, names, reason=args.reason, to_version=to_version,
        actor=args.actor, legacy_stages=args.legacy_stages,
    )


def render(result: dict[str, Any]) -> None:
    print("✔ " + result["message"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

