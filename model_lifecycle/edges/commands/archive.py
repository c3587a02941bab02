"""Retention: archive old versions, never the champion, the challenger, or a recent (previous) champion.

Archiving marks a version (tag lifecycle.archived_at) and removes its aliases; it never deletes a
version, so every former champion stays loadable for audits. --dry-run shows the plan only.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/archive.py --model churn --keep-last 5 --older-than 30 --dry-run
  python scripts/archive.py --model churn --keep-last 5 --older-than 30 --reason "monthly retention"
"""


def whole_number(text: str) -> int:
    """argparse ``type=`` of --keep-last: ASCII digits only ('²' passes str.isdigit but not int())."""
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, got {text!r}")
    return int(text.strip())


def days(text: str) -> float:
    """argparse ``type=`` of --older-than: a finite number of days, 0 or more (not nan, not inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of days, 0 or more, got {text!r}")
    return value


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("archive.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--keep-last", type=whole_number, required=True, metavar="K", help="Always keep the K newest versions.")
    parser.add_argument(
        "--older-than", type=days, required=True, metavar="DAYS",
        help="Archive only versions older than DAYS; a version that was champion within DAYS is kept too.",
    )
    parser.add_argument(
        "--stable-days", type=days, metavar="DAYS",
        help="Archive the previous champion only once the champion has been stable this long (monitored "
             "windows all healthy); default: the policy's retention.stable_days with --policy, else never.")
    parser.add_argument("--min-windows", type=whole_number, metavar="N",
                        help="...with at least N monitored windows (default: retention.min_windows, else 1).")
    parser.add_argument("--policy", metavar="PATH", help="Read retention.stable_days, min_windows and the "
                        "monitoring experiment from this policy file.")
    parser.add_argument("--dry-run", action="store_true", help="List what would be archived; change nothing.")
    parser.add_argument("--legacy-stages", action="store_true", help="Also mirror to MLflow's deprecated stages.")
    cli.add_actor_flags(parser)
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.retention import RetentionRequest, apply_retention

    stable_days, min_windows, experiment = args.stable_days, args.min_windows, "model-monitoring"
    if args.policy:
        from model_lifecycle.core import policy as policies

        policy = policies.load(args.policy)
        stable_days = policy.retention.stable_days if stable_days is None else stable_days
        min_windows = policy.retention.min_windows if min_windows is None else min_windows
        experiment = policy.monitoring.experiment
    return apply_retention(RetentionRequest(
        args.model, args.keep_last, args.older_than, dry_run=args.dry_run, reason=args.reason, actor=args.actor,
        legacy_stages=args.legacy_stages, stable_days=stable_days,
        min_windows=1 if min_windows is None else min_windows, monitoring_experiment=experiment,
        aliases=cli.alias_names(args), tracking_uri=args.tracking_uri,
    ))


def render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = cli.console()
    acted = result.get("would_archive", result.get("archived", []))
    verb = "would archive" if result["dry_run"] else "archived"
    console.print(f"{result['model']}: {verb} {', '.join('v' + v for v in acted) or 'nothing'}")
    if result.get("champion_stability"):
        console.print(f"champion: {result['champion_stability']}")
    if result["kept"]:
        table = Table(title="kept")
        table.add_column("version")
        table.add_column("why")
        for version, why in sorted(result["kept"].items(), key=lambda kv: int(kv[0])):
            table.add_row(version, why)
        console.print(table)


main = cli.command(build_parser, call, render)
