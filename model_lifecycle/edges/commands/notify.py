"""Tell the team: a sticky pull-request comment, an approval-request issue, the job summary, and a
Slack-compatible webhook (Mattermost and Teams workflows accept the same JSON).

The message is the Markdown report (gate verdict, card diff) with a headline and the run's link.
GitHub is reached through $GITHUB_API_URL, so GitHub Enterprise Server works. The webhook URL is a
secret: it is read from $LIFECYCLE_WEBHOOK_URL (or --webhook-url) and never printed.
"""

from __future__ import annotations

from typing import Any, Sequence

from model_lifecycle import settings
from model_lifecycle.api.notify import EVENTS
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/notify.py --model churn --version 7 --event gate --report report.md --pr 42
  python scripts/notify.py --model churn --version 7 --event staged --report report.md --card-diff card-diff.md --request-approval
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("notify.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", help="The model version the message is about.")
    parser.add_argument("--event", required=True, choices=tuple(EVENTS), help="What happened.")
    parser.add_argument("--report", help="Markdown file with the gate report to include.")
    parser.add_argument("--card-diff", help="Markdown file with the model-card diff to include.")
    parser.add_argument("--message", help="Extra text for the headline.")
    parser.add_argument("--repo", default=settings.GITHUB_REPOSITORY.get(), help="OWNER/REPO (default: $GITHUB_REPOSITORY).")
    parser.add_argument("--pr", type=int, help="Pull request number for the sticky comment.")
    parser.add_argument("--request-approval", action="store_true", help="Open (or comment on) an issue asking for review.")
    parser.add_argument("--webhook-url", default=None, help="Slack-compatible webhook (default: $LIFECYCLE_WEBHOOK_URL).")
    return parser


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.api import notify as api

    webhook = args.webhook_url or settings.WEBHOOK_URL.get()
    if webhook and settings.in_github_actions():
        print(f"::add-mask::{webhook}")  # the URL is a secret, also when given as --webhook-url
    result = api.notify(api.NotifyRequest(
        model=args.model, event=args.event, version=args.version, report=args.report, card_diff=args.card_diff,
        message=args.message, repo=args.repo, pr=args.pr, request_approval=args.request_approval,
        webhook_url=webhook,
    ))
    if settings.in_github_actions():
        for warning in result.warnings:
            print(f"::warning title=Notification not sent::{_escape(warning)}")
    return result.to_dict()


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("%", "%25")


def render(result: dict[str, Any]) -> None:
    targets = ", ".join(sorted(result["sent"])) or "nowhere (no target configured)"
    mark = "⚠" if result.get("warnings") else "✔"
    print(f"{mark} notified {targets}: {result['event']} for {result['model']}")
    for warning in result.get("warnings", []):
        print(f"  ⚠ not sent: {warning} (the promotion is not affected)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render, verbose=args.verbose)

