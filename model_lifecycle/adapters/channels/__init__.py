"""Notification channels behind one small interface: a new channel is one class plus its registration.

A channel says whether a message is for it (``enabled``), refuses bad input before anything is
sent (``check``), and sends (``send``), returning what it did. ``send_all`` runs every enabled
channel; a channel that fails becomes a warning in the result, never an exception, because a
notification must not block a promotion. Only bad input (``check``) raises, before any channel sends.

To add a channel::

    @register
    class Teams(Channel):
        name = "teams"
        def enabled(self, message): return bool(message.teams_url)
        def send(self, message): ...; return {"status": 200}

in a module of this package, imported at the bottom of this file (or anywhere before ``send_all``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from model_lifecycle.errors import ToolkitError

# GitHub refuses a comment or issue body over 65,536 characters (422 "Body is too long").
GITHUB_BODY_LIMIT = 65_536
# GitHub refuses a step's job summary over 1 MiB (the upload fails; the step does not).
STEP_SUMMARY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Message:
    """One notification: what happened to which model version, and where it should go."""

    model: str
    event: str  # gate, staged, promoted, refused, rolled-back
    headline: str  # one line, no Markdown heading marks
    markdown: str  # the whole message: headline, run link, report, card diff
    version: str | None = None
    run_url: str | None = None
    repo: str | None = None  # OWNER/REPO, for the GitHub channels
    pr: int | None = None  # pull request that keeps one sticky comment per model
    request_approval: bool = False  # open (or comment on) the approval-request issue
    webhook_url: str | None = field(default=None, repr=False)  # a secret: never printed
    warnings: tuple[str, ...] = ()  # other channels' failures, for channels with reports_warnings


class Channel:
    """Base class of every channel; subclasses set ``name`` and implement ``enabled`` and ``send``."""

    name: ClassVar[str] = ""
    # Sent after every other channel, with their failures in ``message.warnings`` (the job summary).
    reports_warnings: ClassVar[bool] = False

    def enabled(self, message: Message) -> bool:
        raise NotImplementedError

    def check(self, message: Message) -> None:
        """Raise BadInput for a message this channel cannot send. Runs before any channel sends."""

    def send(self, message: Message) -> dict[str, Any]:
        """Deliver the message; return what was done. Raise (preferably ServiceError) on failure."""
        raise NotImplementedError


REGISTRY: dict[str, type[Channel]] = {}


def register(cls: type[Channel]) -> type[Channel]:
    """Class decorator: make the channel known to ``send_all`` under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name to be registered as a channel")
    REGISTRY[cls.name] = cls
    return cls


def send_all(message: Message, channels: Mapping[str, type[Channel]] | None = None) -> dict[str, dict[str, Any]]:
    """Send through every enabled channel: ``{name: {"ok": bool, ...}}``.

    Bad input raises before anything is sent; a failure while sending becomes ``{"ok": False,
    "warning": ...}`` and the remaining channels still send."""
    chosen = [cls() for cls in (REGISTRY if channels is None else channels).values()]
    chosen = [channel for channel in chosen if channel.enabled(message)]
    for channel in chosen:
        channel.check(message)
    results: dict[str, dict[str, Any]] = {}
    for channel in sorted(chosen, key=lambda c: c.reports_warnings):  # stable: registration order otherwise
        if channel.reports_warnings:
            failed = tuple(f"{name}: {r['warning']}" for name, r in results.items() if not r["ok"])
            message = dataclasses.replace(message, warnings=message.warnings + failed)
        try:
            results[channel.name] = {"ok": True, **(channel.send(message) or {})}
        except Exception as exc:  # noqa: BLE001 - a notification never blocks a promotion
            results[channel.name] = {"ok": False, "warning": describe(exc)}
    return results


def describe(exc: BaseException) -> str:
    """A failure in one line, without URLs or tokens (a webhook URL is a secret)."""
    if isinstance(exc, ToolkitError):
        return exc.one_line()
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


# --- fitting a body into a channel's limit -------------------------------------------------------


def utf16_units(text: str) -> int:
    """Length as GitHub counts it at most (UTF-16 code units; never fewer than Python characters)."""
    return len(text.encode("utf-16-le")) // 2


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def fit(text: str, limit: int, run_url: str | None = None,
        measure: Callable[[str], int] = utf16_units) -> tuple[str, bool]:
    """(text, cut): the text itself when it fits, else its head (where a report puts the failures)
    and a line saying that it was cut and where the whole of it is; "" when not even that line fits.
    Closes an open code fence or ``<details>`` so that the cut does not swallow the note."""
    if measure(text) <= limit:
        return text, False
    where = f"the whole report is in the workflow run: {run_url}" if run_url else \
        "the whole report is in the workflow run's job summary and log"
    note = f"\n\n---\n✂️ **Cut here**: the message had {len(text):,} characters, more than this channel takes; " \
        f"{where}\n"
    head = text[: max(limit - measure(note), 0)]
    while True:
        if "\n" in head[-2000:]:  # end on a whole line
            head = head[: head.rindex("\n")]
        closers = "\n```" if head.count("```") % 2 else ""
        closers += "\n</details>" * max(head.count("<details") - head.count("</details>"), 0)
        result = head + closers + note
        excess = measure(result) - limit
        if excess <= 0:
            return result, True
        if not head:  # not even the note fits
            return "", True
        head = head[: max(len(head) - excess, 0)]


# The toolkit's channels, registered in this order (the job summary still sends last: reports_warnings).
from model_lifecycle.adapters.channels import summary  # noqa: E402,F401
from model_lifecycle.adapters.channels import pr_comment  # noqa: E402,F401
from model_lifecycle.adapters.channels import approval_issue  # noqa: E402,F401
from model_lifecycle.adapters.channels import webhook  # noqa: E402,F401
