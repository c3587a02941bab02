"""Tell the team what happened to a model version, through every configured channel.

``notify`` takes a request object and returns a result object; it never parses argv and never
prints. The channels (job summary, sticky pull-request comment, approval-request issue,
Slack-compatible webhook) live in ``model_lifecycle.adapters.channels``. A channel that fails is a
warning in the result, not an error: a notification never blocks a promotion. Bad input (an unknown
event, a missing report file, a PR comment without a repository) raises before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result

EVENTS = {
    "gate": "Promotion gate result",
    "staged": "Staged as @challenger: approval requested",
    "promoted": "Promoted to production (@champion)",
    "refused": "Promotion refused",
    "rolled-back": "Production rolled back",
    "monitor-breach": "Monitoring breach in production",
}


@dataclass(frozen=True)
class NotifyRequest:
    model: str
    event: str  # one of EVENTS
    version: str | None = None
    report: str | None = None  # path of a Markdown report (the gate's)
    report_text: str | None = None  # or its text
    card_diff: str | None = None  # path of the Markdown model-card diff
    card_diff_text: str | None = None  # or its text
    message: str | None = None  # extra text for the headline
    repo: str | None = None  # OWNER/REPO, for the pull-request comment and the approval issue
    pr: int | None = None
    request_approval: bool = False
    webhook_url: str | None = field(default=None, repr=False)  # a secret
    run_url: str | None = None  # default: this workflow run's page, when running in one


@dataclass
class NotifyResult(Result):
    model: str
    event: str
    version: str | None
    sent: dict[str, dict[str, Any]]  # channel -> what it did
    failed: dict[str, dict[str, Any]]  # channel -> why it did not
    warnings: list[str]  # one line per failed channel


def notify(request: NotifyRequest) -> NotifyResult:
    """Compose the message and send it through every enabled channel."""
    from model_lifecycle.adapters import channels

    results = channels.send_all(compose(request))
    return NotifyResult(
        request.model, request.event, request.version,
        sent={name: r for name, r in results.items() if r["ok"]},
        failed={name: r for name, r in results.items() if not r["ok"]},
        warnings=[f"{name}: {r['warning']}" for name, r in results.items() if not r["ok"]],
    )


def compose(request: NotifyRequest) -> Any:
    """The channels' Message: headline, the run's link, then the report and the card diff."""
    from model_lifecycle.adapters.channels import Message
    from model_lifecycle.core.audit import github_run_url

    if request.event not in EVENTS:
        raise BadInput(f"event {request.event!r} is not one of {', '.join(EVENTS)}")
    if not request.model.strip():
        raise BadInput("a model name is needed to notify")
    headline = f"{EVENTS[request.event]}: {request.model}" + (f" v{request.version}" if request.version else "")
    headline += f" — {request.message}" if request.message else ""
    run_url = request.run_url or github_run_url()
    parts = [f"### {headline}"]
    if run_url:
        parts.append(f"Workflow run: {run_url}"
                     + (" (approve the `production` deployment there)" if request.event == "staged" else ""))
    for path, text in ((request.report, request.report_text), (request.card_diff, request.card_diff_text)):
        if path:
            file = Path(path)
            if not file.is_file():
                raise BadInput(f"{path!r} not found (given to notify)")
            text = file.read_text(encoding="utf-8")
        if text:
            parts.append(text)
    return Message(
        model=request.model, event=request.event, headline=headline, markdown="\n\n".join(parts),
        version=request.version, run_url=run_url, repo=request.repo, pr=request.pr,
        request_approval=request.request_approval, webhook_url=request.webhook_url,
    )
