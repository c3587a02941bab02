"""Retention: archive old versions, never the champion, the challenger, or a recent (previous) champion.

Archiving marks a version (tag lifecycle.archived_at) and removes its aliases; it never deletes a
version, so every former champion stays loadable for audits. --dry-run shows the plan only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/archive.py --model churn --keep-last 5 --older-than 30 --dry-run
  python scripts/archive.py --model churn --keep-last 5 --older-than 30 --reason "monthly retention"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("archive.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--keep-last", type=int, required=True, metavar="K", help="Always keep the K newest versions.")
    parser.add_argument(
        "--older-than", type=float, required=True, metavar="DAYS",
        help="Archive only versions older than DAYS; a version that was champion within DAYS is kept too.",
    )
    parser.add_argument("--dry-run", action="store_true", help="List what would be archived; change nothing.")
    parser.add_argument("--legacy-stages", action="store_true", help="Also mirror to MLflow's deprecated stages.")
    cli.add_actor_flags(parser)
    cli.add_alias_flags(parser)
    return parser


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import audit
    from model_lifecycle.core import lifecycle
    from model_lifecycle.adapters import registry
    from model_lifecycle.core import retention

    if args.keep_last < 0:
        raise BadInput(f"--keep-last must be 0 or more, got {args.keep_last}")
    if args.older_than < 0:
        raise BadInput(f"--older-than must be 0 or more days, got {args.older_than:g}")
    names = lifecycle.AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias).validated()
    client = registry.connect(args.tracking_uri)
    model = registry.get_model(client, args.model)
    versions = registry.list_versions(client, args.model)
    events = audit.read(client, args.model)
    plan = retention.plan(
        versions, registry.alias_map(model), events, names,
        keep_last=args.keep_last, older_than_days=args.older_than, now_ms=int(time.time() * 1000),
    )
    archived: list[str] = []
    if not args.dry_run:
        reason = args.reason or f"retention: keep last {args.keep_last}, older than {args.older_than:g} days"
        for version in plan.archive:
            outcome = lifecycle.archive(
                client, args.model, version, names, reason=reason, actor=args.actor,
                legacy_stages=args.legacy_stages, protected_aliases=(names.champion, names.challenger, names.previous),
            )
            if outcome["changed"]:
                archived.append(version)
    return {
        "ok": True,
        "model": args.model,
        "dry_run": args.dry_run,
        "would_archive" if args.dry_run else "archived": plan.archive if args.dry_run else archived,
        "kept": plan.keep,
    }


def render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = cli.console()
    acted = result.get("would_archive", result.get("archived", []))
    verb = "would archive" if result["dry_run"] else "archived"
    console.print(f"{result['model']}: {verb} {', '.join('v' + v for v in acted) or 'nothing'}")
    if result["kept"]:
        table = Table(title="kept")
        table.add_column("version")
        table.add_column("why")
        for version, why in sorted(result["kept"].items(), key=lambda kv: int(kv[0])):
            table.add_row(version, why)
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

