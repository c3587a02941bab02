"""Monitoring: judge a production window against the version's reference profile; act on a breach.

Reads the capture files `serve` writes (or any Parquet/CSV table of the same shape), joins late
labels by request id, and reports data quality, drift per feature and of the predictions, live
metrics by slice and shadow agreement. The window is recorded as an MLflow run linked to the
version. On a breach the policy's monitoring.action runs: notify, or roll @champion back
(compare-and-set against the judged version, audited). Exit 0 healthy/warning/insufficient data,
1 breach (whatever was done about it), 2 bad input.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/monitor.py --model churn --window capture/ --since 2026-11-27T00:00Z --until 2026-11-28T00:00Z
  python scripts/monitor.py --model churn --window 's3://bucket/capture/date=2026-11-27/' --labels labels.parquet
  python scripts/monitor.py --model churn --window capture/ --reference holdout.csv   # first use on an old version
  python scripts/monitor.py --model churn --window capture/ --dry-run
  python scripts/monitor.py --model churn --engine spark --window table:ml.churn_predictions --labels table:ml.churn_labels
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("monitor.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--window", required=True, metavar="PATH|GLOB|URI",
                        help="Capture folder, Parquet/CSV file, glob, or s3://, gs:// URI.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (its monitoring: section).")
    parser.add_argument("--version", type=registry.version_arg, help="Version to judge (default: @champion).")
    parser.add_argument("--labels", metavar="PATH|URI", help="Late labels: request_id, the target, optional slice columns.")
    parser.add_argument("--label-column", help="The labels' target column (default: the policy's holdout.target).")
    parser.add_argument("--since", metavar="ISO", help="First moment of the window (UTC unless stated).")
    parser.add_argument("--until", metavar="ISO", help="End of the window (exclusive).")
    parser.add_argument("--reference", metavar="HOLDOUT",
                        help="Build the version's reference profile from this hold-out if it has none.")
    parser.add_argument("--output", default="monitoring.json", help="Where the JSON result is written.")
    parser.add_argument("--report", default="monitoring.md", help="Where the Markdown report is written.")
    parser.add_argument("--engine", choices=("local", "spark"), default=None,
                        help="local: pyarrow on this machine, a column at a time; spark: where the window lives "
                             "(files or table:<name>; labels too), needs the [spark] extra. "
                             "Default: the policy's engine, else local.")
    parser.add_argument("--dry-run", action="store_true", help="Judge and report only: record nothing, take no action.")
    parser.add_argument("--repo", metavar="OWNER/REPO", help="Repository for GitHub notification channels.")
    parser.add_argument("--actor", default=None, help="Who acts on a breach (default: $GITHUB_ACTOR, else user@host).")
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.monitor import MonitorRequest, monitor

    return monitor(MonitorRequest(
        args.model, args.window, args.policy, version=args.version, labels=args.labels, label_column=args.label_column,
        since=args.since, until=args.until, reference=args.reference, output=args.output, report=args.report,
        act=not args.dry_run, log=not args.dry_run, repo=args.repo, actor=args.actor,
        aliases=cli.alias_names(args), tracking_uri=args.tracking_uri, engine=args.engine,
        progress=cli.Progress(args.json),
    ))


def render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = cli.console()
    mark = {"healthy": "✔", "warning": "!", "breach": "✘", "insufficient_data": "…"}.get(result["status"], "?")
    console.print(f"{mark} {result['model']} v{result['version']}: {result['status'].replace('_', ' ')} "
                  f"({result['rows']} rows, {result['window']['start'] or '?'} → {result['window']['end']})")
    for note in result["notes"]:
        console.print(f"  {note}")
    if result["findings"]:
        table = Table()
        for column in ("level", "check", "subject", "statistic", "value", "threshold"):
            table.add_column(column)
        for f in result["findings"]:
            value, threshold = f.get("value"), f.get("threshold")
            table.add_row(f["level"], f["check"], str(f["subject"]), f["statistic"],
                          f"{value:.4g}" if isinstance(value, (int, float)) else str(value),
                          f"{threshold:.4g}" if isinstance(threshold, (int, float)) else "")
        console.print(table)
    if result["action"] != "none":
        console.print(f"action: {result['action']}" + (f" — {result['action_detail']}" if result["action_detail"] else ""))


main = cli.command(build_parser, call, render)
