"""Show a model's versions with their aliases, state and lineage; its audit history; who was champion when.

State is derived from the registry: the aliases (champion, challenger, previous-champion) and the
toolkit's archive mark. A champion alias that disagrees with the audit record (moved outside the
toolkit) is reported as drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/status.py --model churn
  python scripts/status.py --model churn --audit --json
  python scripts/status.py --model churn --at 2026-11-27T10:00:00Z
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("status.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--audit", action="store_true", help="Also show the audit history (every recorded change).")
    parser.add_argument(
        "--at", metavar="TIMESTAMP", help="Answer which version was champion at this moment (ISO 8601 or epoch seconds)."
    )
    cli.add_alias_flags(parser)
    return parser


def version_state(version: Any, aliases: list[str], names: Any) -> str:
    from model_lifecycle.adapters.registry import is_archived

    for alias, state in ((names.champion, "champion"), (names.challenger, "challenger"), (names.previous, "previous-champion")):
        if alias in aliases:
            return state
    return "archived" if is_archived(version) else "registered"


def describe_version(version: Any, aliases: list[str], names: Any) -> dict[str, Any]:
    tags = version.tags or {}
    return {
        "version": str(version.version),
        "aliases": aliases,
        "state": version_state(version, aliases, names),
        "created": version.creation_timestamp,
        "source": version.source,
        "run_id": version.run_id,
        "git_commit": tags.get("lifecycle.git_commit"),
        "github_run_url": tags.get("lifecycle.github_run_url"),
        "datasets": {
            key.split(".")[2]: value
            for key, value in tags.items()
            if key.startswith("lifecycle.dataset.") and key.endswith(".sha256")
        },
        "archived_at": tags.get("lifecycle.archived_at"),
        "champion_since": tags.get("lifecycle.champion_since"),
    }


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import audit
    from model_lifecycle.core import lifecycle
    from model_lifecycle.adapters import registry

    names = lifecycle.AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias).validated()
    at_ms = audit.parse_timestamp(args.at) if args.at else None
    client = registry.connect(args.tracking_uri)
    model = registry.get_model(client, args.model)
    aliases = registry.alias_map(model)
    events = audit.read(client, args.model)
    stack = audit.champion_stack(events)
    result: dict[str, Any] = {
        "ok": True,
        "model": args.model,
        "aliases": aliases,
        "champion": aliases.get(names.champion),
        "challenger": aliases.get(names.challenger),
        "previous_champion": aliases.get(names.previous),
        "champion_history": stack,
    }
    recorded = stack[-1] if stack else None
    if recorded != aliases.get(names.champion):
        result["drift"] = (
            f"@{names.champion} is {aliases.get(names.champion) or 'unset'} but the audit record says "
            f"{recorded or 'none'}: the alias was changed outside the toolkit"
        )
    if at_ms is not None:
        result["at"] = {"time": audit.now_iso(at_ms), "champion": audit.champion_at(events, at_ms)}
        if not args.audit:
            return result
    versions = registry.list_versions(client, args.model)
    result["versions"] = [
        describe_version(v, registry.aliases_of(model, str(v.version)), names) for v in versions
    ]
    if args.audit:
        result["audit"] = events
    return result


def render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = cli.console()
    if "drift" in result:
        console.print(f"[bold yellow]⚠ drift:[/] {result['drift']}")
    if "at" in result:
        champion = result["at"]["champion"]
        console.print(
            f"At {result['at']['time']} the champion of {result['model']} was "
            + (f"[bold]v{champion}[/]" if champion else "[bold]none[/] (no promotion recorded before then)")
        )
    if "versions" in result:
        table = Table(title=f"{result['model']}: versions")
        for column in ("version", "aliases", "state", "git commit", "training run", "hold-out sha256"):
            table.add_column(column)
        for v in result["versions"]:
            table.add_row(
                v["version"],
                ", ".join("@" + a for a in v["aliases"]),
                v["state"],
                (v["git_commit"] or "")[:10],
                (v["run_id"] or "")[:12],
                (v["datasets"].get("holdout") or "")[:19],
            )
        console.print(table)
    if "audit" in result:
        render_audit(console, result["model"], result["audit"])


def render_audit(console: Any, model: str, events: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{model}: audit record")
    for column in ("time (UTC)", "action", "version", "previous", "actor", "approver", "reason"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            e.get("time", "")[:19].replace("T", " "),
            e.get("action", ""),
            str(e.get("version") or ""),
            str(e.get("previous_version") or ""),
            e.get("actor", ""),
            e.get("approver") or "",
            e.get("reason") or "",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

