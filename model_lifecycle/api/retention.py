"""Retention: archive old versions by the rules of ``core.retention``, never a recent champion."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result


@dataclass(frozen=True)
class RetentionRequest:
    model: str
    keep_last: int
    older_than_days: float
    dry_run: bool = False
    reason: str | None = None
    actor: str | None = None
    legacy_stages: bool = False
    stable_days: float | None = None  # archive the previous champion once the champion is stable this long
    min_windows: int = 1  # ...with at least this many monitored windows, all healthy
    monitoring_experiment: str = "model-monitoring"
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


@dataclass
class RetentionResult(Result):
    model: str
    dry_run: bool
    would_archive: list[str] | None
    archived: list[str] | None
    kept: dict[str, str]  # version -> why it is kept
    champion_stability: str | None = None  # with a stable period: whether the champion is stable, and why
    omit_when_none = ("would_archive", "archived", "champion_stability")


def apply_retention(request: RetentionRequest) -> RetentionResult:
    """Plan (and unless dry-run, apply) retention; each archive is re-decided on a fresh read and claimed (core.claims)."""
    from model_lifecycle.core import audit, lifecycle, retention

    if request.keep_last < 0:
        raise BadInput(f"--keep-last must be 0 or more, got {request.keep_last}")
    if not request.older_than_days >= 0 or request.older_than_days == float("inf"):
        raise BadInput(f"--older-than must be a number of days, 0 or more, got {request.older_than_days:g}")
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    model = registry.get_model(client, request.model)
    versions = registry.list_versions(client, request.model)
    events = audit.read(client, request.model)
    now_ms = int(time.time() * 1000)
    aliases = registry.alias_map(model)
    stability = None
    if request.stable_days is not None:
        stability = champion_stability(client, request, aliases.get(names.champion), events, now_ms)
    plan = retention.plan(
        versions, aliases, events, names,
        keep_last=request.keep_last, older_than_days=request.older_than_days, now_ms=now_ms, stability=stability,
    )
    stable = stability.why if stability is not None else None
    if request.dry_run:
        return RetentionResult(request.model, True, plan.archive, None, plan.keep, stable)
    archived: list[str] = []
    reason = request.reason or (
        f"retention: keep last {request.keep_last}, older than {request.older_than_days:g} days")
    for version in plan.archive:
        stable_previous = version == plan.stable_previous
        outcome = lifecycle.archive(
            client, request.model, version, names, legacy_stages=request.legacy_stages, actor=request.actor,
            reason=f"{reason}; the champion v{aliases.get(names.champion)} is {stable}" if stable_previous else reason,
            protected_aliases=(names.champion, names.challenger) if stable_previous
            else (names.champion, names.challenger, names.previous),
            expect_champion=aliases.get(names.champion) if stable_previous else None,
        )
        if outcome.changed:
            archived.append(version)
        elif stable_previous:
            plan.keep[version] = outcome.message
    return RetentionResult(request.model, False, None, archived, plan.keep, stable)


def champion_stability(client: Any, request: RetentionRequest, champion: str | None,
                       events: list[dict[str, Any]], now_ms: int) -> Any:
    """Whether the champion has been stable for the request's period: since it last became champion
    (its last promotion or rollback in the audit record), enough windows and all of them healthy."""
    from model_lifecycle.core.monitoring import history, records

    if request.stable_days is None or not request.stable_days >= 0 or request.min_windows < 0:
        raise BadInput(f"--stable-days must be 0 or more, got {request.stable_days}")
    if champion is None:
        return history.Stability(False, "not stable: there is no champion", 0, 0.0)
    since = max((int(e.get("epoch_ms", 0)) for e in events
                 if e.get("action") in ("promote", "rollback") and str(e.get("version")) == champion), default=None)
    windows = records.window_history(client, request.monitoring_experiment, request.model, champion)
    return history.stability(windows, since, now_ms, request.stable_days, request.min_windows)
