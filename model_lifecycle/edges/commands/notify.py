"""Tell the team: a sticky pull-request comment, an approval-request issue, the job summary, and a
Slack-compatible webhook (Mattermost and Teams workflows accept the same JSON).

The message is the Markdown report (gate verdict, card diff) with a headline and the run's link.
GitHub is reached through $GITHUB_API_URL, so GitHub Enterprise Server works. The webhook URL is a
secret: it is read from $LIFECYCLE_WEBHOOK_URL (or --webhook-url) and never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/notify.py --model churn --version 7 --event gate --report report.md --pr 42
  python scripts/notify.py --model churn --version 7 --event staged --report report.md --card-diff card-diff.md --request-approval
"""
EVENTS = {
    "gate": "Promotion gate result",
    "staged": "Staged as @challenger: approval requested",
    "promoted": "Promoted to production (@champion)",
    "refused": "Promotion refused",
    "rolled-back": "Production rolled back",
}


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("notify.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", help="The model version the message is about.")
    parser.add_argument("--event", required=True, choices=tuple(EVENTS), help="What happened.")
    parser.add_argument("--report", help="Markdown file with the gate report to include.")
    parser.add_argument("--card-diff", help="Markdown file with the model-card diff to include.")
    parser.add_argument("--message", help="Extra text for the headline.")
    parser.add_argument("--repo", default=os.environ.get("GITHUB_REPOSITORY"), help="OWNER/REPO (default: $GITHUB_REPOSITORY).")
    parser.add_argument("--pr", type=int, help="Pull request number for the sticky comment.")
    parser.add_argument("--request-approval", action="store_true", help="Open (or comment on) an issue asking for review.")
    parser.add_argument("--webhook-url", default=None, help="Slack-compatible webhook (default: $LIFECYCLE_WEBHOOK_URL).")
    return parser


def compose(args: Any) -> str:
    from model_lifecycle.core.audit import github_run_url

    headline = f"### {EVENTS[args.event]}: {args.model}" + (f" v{args.version}" if args.version else "")
    parts = [headline + (f" — {args.message}" if args.message else "")]
    url = github_run_url()
    if url:
        parts.append(f"Workflow run: {url}" + (" (approve the `production` deployment there)" if args.event == "staged" else ""))
    for path in (args.report, args.card_diff):
        if path:
            file = Path(path)
            if not file.is_file():
                raise BadInput(f"{path!r} not found (given to notify.py)")
            parts.append(file.read_text(encoding="utf-8"))
    return "\n\n".join(parts)


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.adapters import github as github_api

    body = compose(args)
    sent: dict[str, Any] = {}
    cli.append_step_summary(body)
    if cli.in_github_actions():
        sent["summary"] = True
    if args.pr or args.request_approval:
        if not args.repo:
            raise BadInput("--repo (or $GITHUB_REPOSITORY) is needed to comment on GitHub")
        gh = github_api.connect()
        if args.pr:
            sent["comment"] = github_api.upsert_comment(gh, args.repo, args.pr, args.model, body)
        if args.request_approval:
            title = f"Approve {args.model} v{args.version} for production"
            sent["issue"] = github_api.request_approval_issue(gh, args.repo, args.model, title, body)
    webhook = args.webhook_url or os.environ.get("LIFECYCLE_WEBHOOK_URL")
    if webhook:
        if cli.in_github_actions():
            print(f"::add-mask::{webhook}")
        github_api.post_webhook(webhook, body)
        sent["webhook"] = True
    return {"ok": True, "model": args.model, "event": args.event, "sent": sent}


def render(result: dict[str, Any]) -> None:
    targets = ", ".join(sorted(result["sent"])) or "nowhere (no target configured)"
    print(f"✔ notified {targets}: {result['event']} for {result['model']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

