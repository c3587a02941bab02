"""Show a model's versions with their aliases, state and lineage; its audit history; who was champion when.

State is derived from the registry: the aliases (champion, challenger, previous-champion) and the
toolkit's archive mark. A champion alias that disagrees with the audit record (moved outside the
toolkit) is reported as drift.
"""

from __future__ import annotations

from typing import Any

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
    parser.add_argument("--repair", action="store_true",
                        help="Set the aliases back to the audit record after a late write that status reported "
                             "(audited as a repair event), then show the status.")
    parser.add_argument("--reason", help="With --repair: why (recorded in the audit record).")
    parser.add_argument(
        "--at", metavar="TIMESTAMP", help="Answer which version was champion at this moment (ISO 8601 or epoch seconds)."
    )
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.status import StatusRequest, status

    if args.repair:
        from model_lifecycle.api.lifecycle import RepairRequest, repair

        repair(RepairRequest(args.model, args.reason, aliases=cli.alias_names(args), tracking_uri=args.tracking_uri))
    return status(StatusRequest(args.model, audit=args.audit, at=args.at, aliases=cli.alias_names(args),
                                tracking_uri=args.tracking_uri))


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
        for column in ("version", "aliases", "state", "health", "last window", "git commit", "training run",
                       "hold-out sha256"):
            table.add_column(column)
        for v in result["versions"]:
            table.add_row(
                v["version"],
                ", ".join("@" + a for a in v["aliases"]),
                v["state"],
                (v.get("health") or "").replace("_", " "),
                ((v.get("last_window") or {}).get("end") or "")[:16].replace("T", " "),
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


main = cli.command(build_parser, call, render)
