"""Decisions over the recorded windows of a version: plain functions, so the rules read in one place.

- A breach acts only after ``consecutive_breaches`` breached windows in a row (windows with too
  little data neither count nor break the run; the same window recorded twice counts once).
- No automatic rollback within ``cooldown_hours`` of the model's last rollback: a model is never
  rolled back and forth by monitoring.
- A champion is *stable* once it has been champion for ``stable_days`` with at least
  ``min_windows`` windows since, every one of them healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class WindowRecord:
    end_ms: int
    status: str
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict, compare=False)  # as the search returned them


def breach_streak(windows: Iterable[WindowRecord]) -> int:
    """Breached windows in a row, newest first, counting each window end once."""
    by_end: dict[int, WindowRecord] = {}
    for record in windows:
        by_end[record.end_ms] = record  # later records of the same window replace earlier ones
    streak = 0
    for record in sorted(by_end.values(), key=lambda r: r.end_ms, reverse=True):
        if record.status == "insufficient_data":
            continue
        if record.status != "breach":
            break
        streak += 1
    return streak


def cooldown_left_ms(events: Iterable[dict[str, Any]], now_ms: int, cooldown_hours: float) -> int:
    """How long until automatic rollback is allowed again (0: now)."""
    last = max((int(e.get("epoch_ms", 0)) for e in events if e.get("action") == "rollback"), default=None)
    if last is None:
        return 0
    return max(0, last + int(cooldown_hours * HOUR_MS) - now_ms)


@dataclass(frozen=True)
class Stability:
    stable: bool
    why: str
    healthy_windows: int
    days: float


def stability(windows: Iterable[WindowRecord], champion_since_ms: int | None, now_ms: int,
              stable_days: float, min_windows: int) -> Stability:
    """Whether the champion has been stable: long enough, with enough windows, all healthy."""
    if champion_since_ms is None:
        return Stability(False, "not stable: no record of when it became champion", 0, 0.0)
    days = max(0.0, (now_ms - champion_since_ms) / DAY_MS)
    since = [w for w in windows if w.end_ms >= champion_since_ms and w.status != "insufficient_data"]
    unhealthy = [w for w in since if w.status != "healthy"]
    healthy = len(since) - len(unhealthy)
    if unhealthy:
        worst = "breach" if any(w.status == "breach" for w in unhealthy) else "warning"
        return Stability(False, f"not stable: {len(unhealthy)} of {len(since)} windows since it became champion "
                                f"were not healthy (worst: {worst})", healthy, days)
    if days < stable_days or healthy < min_windows:
        return Stability(False, f"not yet stable: {healthy} healthy windows of {min_windows} needed, "
                                f"{days:.1f} of {stable_days:g} days", healthy, days)
    return Stability(True, f"stable: {healthy} healthy windows over {days:.1f} days", healthy, days)
