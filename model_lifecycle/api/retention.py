"""Retention: archive old versions by the rules of ``core.retention``, never a recent champion."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


@dataclass
class RetentionResult(Result):
    model: str
    dry_run: bool
    would_archive: list[str] | None
    archived: list[str] | None
    kept: dict[str, str]  # version -> why it is kept
    omit_when_none = ("would_archive", "archived")


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
    plan = retention.plan(
        versions, registry.alias_map(model), events, names,
        keep_last=request.keep_last, older_than_days=request.older_than_days, now_ms=int(time.time() * 1000),
    )
    if request.dry_run:
        return RetentionResult(request.model, True, plan.archive, None, plan.keep)
    archived: list[str] = []
    reason = request.reason or (
        f"retention: keep last {request.keep_last}, older than {request.older_than_days:g} days")
    for version in plan.archive:
        outcome = lifecycle.archive(
            client, request.model, version, names, reason=reason, actor=request.actor,
            legacy_stages=request.legacy_stages, protected_aliases=(names.champion, names.challenger, names.previous),
        )
        if outcome.changed:
            archived.append(version)
    return RetentionResult(request.model, False, None, archived, plan.keep)
