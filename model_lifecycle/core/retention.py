"""Which versions retention may archive, and why every other one is kept.

Plain functions over registry data, so the rules can be read (and tested) in one place:
never the champion, the challenger or the previous champion; never a version that was champion
within the window (it may be needed for a rollback); never one of the newest ``keep_last``;
never one younger than the window. With a stable period (``retention.stable_days``) the previous
champion is kept until the champion is stable, and archived then. Nothing is ever deleted:
archiving only marks and un-aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

DAY_MS = 86_400_000


@dataclass
class RetentionPlan:
    archive: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)  # version -> why it is kept
    stable_previous: str | None = None  # the previous champion, archived because the champion is stable


def champions_since(events: Iterable[dict[str, Any]], since_ms: int) -> set[str]:
    """Versions that held the champion alias at any moment from ``since_ms`` on."""
    from model_lifecycle.core.audit import champion_stack

    events = list(events)
    holders = set()
    before = [e for e in events if int(e.get("epoch_ms", 0)) < since_ms]
    stack = champion_stack(before)
    if stack:
        holders.add(stack[-1])  # the champion when the window opened
    for event in events:
        if int(event.get("epoch_ms", 0)) >= since_ms and event.get("action") in ("promote", "rollback"):
            holders.add(str(event["version"]))
    return holders


def plan(
    versions: list[Any],
    aliases: dict[str, str],
    events: list[dict[str, Any]],
    names: Any,
    *,
    keep_last: int,
    older_than_days: float,
    now_ms: int,
    stability: Any = None,
) -> RetentionPlan:
    """``stability`` (``core.monitoring.history.Stability`` of the current champion, when the policy
    sets a stable period) decides the previous champion: kept while the champion is not stable,
    archived once it is (only ``keep_last`` still keeps it then)."""
    from model_lifecycle.adapters.registry import is_archived

    result = RetentionPlan()
    window_start = now_ms - int(older_than_days * DAY_MS)
    role = {aliases.get(names.champion): "champion", aliases.get(names.challenger): "challenger",
            aliases.get(names.previous): "previous champion"}
    recent_champions = champions_since(events, window_start)
    newest = {str(v.version) for v in sorted(versions, key=lambda v: int(v.version), reverse=True)[:keep_last]}
    for v in sorted(versions, key=lambda v: int(v.version)):
        number = str(v.version)
        if is_archived(v):
            continue
        if number in role and role[number] == "previous champion" and stability is not None:
            if not stability.stable:
                result.keep[number] = f"@previous champion, until the champion is stable ({stability.why})"
            elif number in newest:
                result.keep[number] = f"one of the newest {keep_last}"
            else:
                result.archive.append(number)
                result.stable_previous = number
        elif number in role:
            result.keep[number] = f"@{role[number]}"
        elif number in recent_champions:
            result.keep[number] = f"was champion within the last {older_than_days:g} days"
        elif number in newest:
            result.keep[number] = f"one of the newest {keep_last}"
        elif int(v.creation_timestamp or 0) > window_start:
            result.keep[number] = f"younger than {older_than_days:g} days"
        else:
            result.archive.append(number)
    return result
