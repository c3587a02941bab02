"""The lifecycle core: stage, promote, archive and roll back model versions, each audited.

Every change follows one pattern, so that a failure half-way leaves either the old or the new state:

1. validate the request (bad input -> exit 2, nothing touched);
2. take the model's lock (``model_lock``) and read the aliases afresh;
3. decide (compare-and-set, challenger check) -> a plan: a list of idempotent steps whose
   FIRST step is the commit point (the alias move, or the archive mark), plus the audit event;
4. store plan and event in the lock as its *intent*, apply the steps, append the event.

If the process dies after the commit, the next caller finds the stale lock, sees the commit took
effect, replays the remaining steps and writes the very same event (same key, same bytes). If it
died before the commit, nothing had changed and the intent is dropped.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model_lifecycle import settings, tags
from model_lifecycle.adapters.registry import (
    alias_map,
    aliases_of,
    get_model,
    get_version,
    is_archived,
    is_not_found,
    mlflow_errors,
    validate_alias,
    writer,
)
from model_lifecycle.core import audit
from model_lifecycle.core import lock as model_lock
from model_lifecycle.errors import BadInput, Refused
from model_lifecycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

TARGETS = ("staging", "production", "archived")
NO_CHAMPION = "none"


@dataclass(frozen=True)
class AliasNames:
    """The aliases that carry the lifecycle; configurable, validated, and distinct."""

    champion: str = tags.CHAMPION_ALIAS
    challenger: str = tags.CHALLENGER_ALIAS
    previous: str = tags.PREVIOUS_ALIAS

    @classmethod
    def from_settings(cls) -> "AliasNames":
        """The team's names from $LIFECYCLE_*_ALIAS, else the defaults."""
        return cls(settings.CHAMPION_ALIAS.get() or tags.CHAMPION_ALIAS,
                   settings.CHALLENGER_ALIAS.get() or tags.CHALLENGER_ALIAS,
                   settings.PREVIOUS_ALIAS.get() or tags.PREVIOUS_ALIAS)

    def validated(self) -> "AliasNames":
        validate_alias(self.champion, "champion")
        validate_alias(self.challenger, "challenger")
        validate_alias(self.previous, "previous-champion")
        if len({self.champion, self.challenger, self.previous}) != 3:
            raise BadInput(
                "champion, challenger and previous-champion aliases must be three different names",
                hint=f"got {self.champion!r}, {self.challenger!r}, {self.previous!r}",
            )
        return self


# --- steps: small idempotent operations, stored as JSON in the lock's intent ----------------------


def _set_alias(alias: str, version: str) -> dict[str, str]:
    return {"op": "set_alias", "alias": alias, "version": version}


def _delete_alias(alias: str) -> dict[str, str]:
    return {"op": "delete_alias", "alias": alias}


def _set_tag(version: str, key: str, value: str) -> dict[str, str]:
    return {"op": "set_version_tag", "version": version, "key": key, "value": value}


def _delete_tag(version: str, key: str) -> dict[str, str]:
    return {"op": "delete_version_tag", "version": version, "key": key}


def _legacy_stage(version: str, stage: str, archive_existing: bool = False) -> dict[str, Any]:
    return {"op": "legacy_stage", "version": version, "stage": stage, "archive_existing": archive_existing}


def _apply(client: "MlflowClient", name: str, step: dict[str, Any]) -> None:
    from mlflow.exceptions import MlflowException

    op = step["op"]
    client = writer(client)
    with mlflow_errors():
        if op == "set_alias":
            client.set_registered_model_alias(name, step["alias"], step["version"])
        elif op == "delete_alias":
            try:
                client.delete_registered_model_alias(name, step["alias"])
            except MlflowException as exc:
                if not is_not_found(exc):
                    raise
        elif op == "set_version_tag":
            client.set_model_version_tag(name, step["version"], step["key"], step["value"])
        elif op == "delete_version_tag":
            try:
                client.delete_model_version_tag(name, step["version"], step["key"])
            except MlflowException as exc:
                if not is_not_found(exc):
                    raise
        elif op == "legacy_stage":
            with warnings.catch_warnings():  # stages are deprecated; the mirror is opt-in
                warnings.simplefilter("ignore", FutureWarning)
                client.transition_model_version_stage(
                    name, step["version"], step["stage"], archive_existing_versions=step["archive_existing"]
                )
        else:  # pragma: no cover - plans are built in this module
            raise ValueError(f"unknown step {op!r}")


def _committed(client: "MlflowClient", name: str, step: dict[str, Any]) -> bool:
    """Whether the commit step (always the first) is visible in the registry."""
    if step["op"] == "set_alias":
        return alias_map(get_model(client, name)).get(step["alias"]) == step["version"]
    if step["op"] == "set_version_tag":
        return (get_version(client, name, step["version"]).tags or {}).get(step["key"]) == step["value"]
    return False


def _failpoint(name: str) -> None:
    """Test hook: ``LIFECYCLE_FAILPOINT=after-commit`` kills the process right after the commit,
    which is how the tests prove that a crash half-way is finished by the next run."""
    if settings.FAILPOINT.get() == name:
        os._exit(70)


def _recover(client: "MlflowClient", name: str):
    def recover(intent: dict[str, Any]) -> None:
        steps, event = intent["steps"], intent["event"]
        if not steps or not _committed(client, name, steps[0]):
            return  # died before the commit: nothing changed
        for step in steps:
            _apply(client, name, step)
        audit.append(client, get_model(client, name), event)

    return recover


def _execute(client: "MlflowClient", lock: model_lock.Lock, model: Any, steps: list, event: dict) -> None:
    lock.set_intent({"steps": steps, "event": event})
    # Committed from here on: a timeout on the first step may hide that the server applied it, so
    # the intent must survive; recovery checks whether the commit really took effect.
    lock.committed = True
    _apply(client, model.name, steps[0])
    _failpoint("after-commit")
    for step in steps[1:]:
        _apply(client, model.name, step)
    audit.append(client, model, event)
    lock.finished = True


@dataclass
class Change(Result):
    """What a lifecycle change did: ``changed`` is False for a no-op (already in that state)."""

    action: str
    model: str
    version: str | None
    changed: bool
    message: str
    event: dict[str, Any] | None = None
    previous_version: str | None = None
    omit_when_none = ("event", "previous_version")


def _result(action: str, model: str, version: str | None, changed: bool, message: str, event=None) -> Change:
    return Change(action, model, version, changed, message, event,
                  event.get("previous_version") if event is not None else None)


def verdict_evidence(version: Any) -> dict[str, str]:
    """The gate's evidence as the registry holds it: the digest of the verdict the compare step
    tagged on the version. Read from the version (never from a file of another job), so a stage or
    promote job on another runner records the same digest."""
    digest = (version.tags or {}).get(tags.VERDICT_SHA256)
    return {"verdict": digest} if digest else {}


# --- transitions -----------------------------------------------------------------------------------


def require_reason_for_force(force: bool, reason: str | None) -> None:
    if force and not reason:
        raise BadInput("--force needs --reason: say why a version that is not the challenger is promoted")


def stage(
    client: "MlflowClient",
    name: str,
    version: str,
    names: AliasNames,
    *,
    reason: str | None = None,
    actor: str | None = None,
    evidence: dict[str, str] | None = None,
    force: bool = False,
    legacy_stages: bool = False,
) -> Change:
    """Point the challenger alias at ``version`` (the staging step)."""
    names.validated()
    mv = get_version(client, name, version)
    if is_archived(mv) and not force:
        raise BadInput(
            f"version {version} of {name!r} is archived",
            hint="archived versions are not staged again; register a new version, or pass --force --reason",
        )
    with model_lock.hold(client, name, "stage", _recover(client, name)) as lock:
        model = get_model(client, name)
        aliases = alias_map(model)
        if aliases.get(names.champion) == version:
            raise BadInput(f"version {version} of {name!r} is already the champion; it cannot be the challenger")
        current = aliases.get(names.challenger)
        if current == version:
            lock.finished = True
            return _result("stage", name, version, False, f"v{version} is already @{names.challenger}")
        steps = [_set_alias(names.challenger, version)]
        if is_archived(mv):
            steps.append(_delete_tag(version, tags.ARCHIVED_AT))
        if legacy_stages:
            steps.append(_legacy_stage(version, "Staging"))
            if current:
                steps.append(_legacy_stage(current, "None"))
        event = audit.new_event(
            "stage", name, version, previous_version=current, alias=names.challenger,
            reason=reason, actor_name=actor, evidence={**verdict_evidence(mv), **(evidence or {})} or None, details={"forced": force} if force else None,
        )
        _execute(client, lock, model, steps, event)
    return _result("stage", name, version, True, f"v{version} is now @{names.challenger}", event)


def promote(
    client: "MlflowClient",
    name: str,
    version: str,
    names: AliasNames,
    *,
    expect_champion: str | None = None,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
    approver: str | None = None,
    approval: dict[str, Any] | None = None,
    evidence: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
    legacy_stages: bool = False,
) -> Change:
    """Move the champion alias to ``version``, compare-and-set against ``expect_champion``.

    ``expect_champion`` is the champion the caller saw (a version, or "none" for no champion);
    when the champion moved since, nothing changes and Refused (exit 1) is raised. The previous
    champion keeps the previous-champion alias, so it stays reachable for rollback.
    """
    names.validated()
    require_reason_for_force(force, reason)
    mv = get_version(client, name, version)
    if is_archived(mv):
        raise BadInput(
            f"version {version} of {name!r} is archived",
            hint="stage it again first (transition --to staging --force --reason ...)",
        )
    with model_lock.hold(client, name, "promote", _recover(client, name)) as lock:
        model = get_model(client, name)
        aliases = alias_map(model)
        current = aliases.get(names.champion)
        if current == version:
            lock.finished = True
            return _result("promote", name, version, False, f"v{version} is already @{names.champion}")
        if expect_champion is not None:
            expected = None if expect_champion == NO_CHAMPION else expect_champion
            if current != expected:
                raise Refused(
                    f"@{names.champion} of {name!r} is {_v(current)}, not {_v(expected)} as expected: "
                    "it moved since you looked; nothing was changed",
                    hint="re-read the champion and re-run the comparison before promoting",
                )
        challenger = aliases.get(names.challenger)
        if challenger != version and not force:
            raise Refused(
                f"version {version} of {name!r} is not @{names.challenger} "
                    f"(@{names.challenger} is {_v(challenger, 'unset')}); nothing was changed",
                hint="stage it through the gate first, or pass --force --reason to override",
            )
        event = audit.new_event(
            "promote", name, version, previous_version=current, alias=names.champion,
            reason=reason, actor_name=actor, approver=approver, approval=approval,
            evidence={**verdict_evidence(mv), **(evidence or {})} or None,
            details={"forced": force, "expected_champion": expect_champion, "was_challenger": challenger == version,
                     **(details or {})},
        )
        steps = [_set_alias(names.champion, version)]
        if current:
            steps.append(_set_alias(names.previous, current))
        if challenger == version:
            steps.append(_delete_alias(names.challenger))
        if tags.CHAMPION_SINCE not in (mv.tags or {}):
            steps.append(_set_tag(version, tags.CHAMPION_SINCE, event["time"]))
        if legacy_stages:
            steps.append(_legacy_stage(version, "Production", archive_existing=True))
        _execute(client, lock, model, steps, event)
    return _result("promote", name, version, True, f"v{version} is now @{names.champion} (was {_v(current)})", event)


def archive(
    client: "MlflowClient",
    name: str,
    version: str,
    names: AliasNames,
    *,
    reason: str | None = None,
    actor: str | None = None,
    legacy_stages: bool = False,
    protected_aliases: tuple[str, ...] = (),
) -> Change:
    """Mark a version archived and remove its aliases. The champion is never archived.

    Retention passes ``protected_aliases`` (challenger, previous champion): a version holding one
    of them is kept. This is checked under the lock, on aliases read afresh, so a promotion that
    happened after retention made its plan is respected.
    """
    names.validated()
    mv = get_version(client, name, version)
    if is_archived(mv):
        return _result("archive", name, version, False, f"v{version} is already archived")
    with model_lock.hold(client, name, "archive", _recover(client, name)) as lock:
        model = get_model(client, name)
        aliases = alias_map(model)
        held = [a for a in protected_aliases if aliases.get(a) == version]
        if held:
            lock.finished = True
            return _result("archive", name, version, False, f"v{version} kept: it is @{held[0]}")
        if aliases.get(names.champion) == version:
            raise BadInput(
                f"version {version} of {name!r} is @{names.champion} and cannot be archived",
                hint="promote another version or roll back first",
            )
        event = audit.new_event(
            "archive", name, version, reason=reason, actor_name=actor,
            details={"removed_aliases": aliases_of(model, version)} if aliases_of(model, version) else None,
        )
        steps = [_set_tag(version, tags.ARCHIVED_AT, event["time"])]
        if reason:
            steps.append(_set_tag(version, tags.ARCHIVE_REASON, reason[:5000]))
        steps.extend(_delete_alias(alias) for alias in aliases_of(model, version))
        if legacy_stages:
            steps.append(_legacy_stage(version, "Archived"))
        _execute(client, lock, model, steps, event)
    return _result("archive", name, version, True, f"v{version} archived", event)


def rollback(
    client: "MlflowClient",
    name: str,
    names: AliasNames,
    *,
    reason: str,
    to_version: str | None = None,
    actor: str | None = None,
    legacy_stages: bool = False,
) -> Change:
    """Move the champion back to the previous champion *as recorded in the audit record*."""
    names.validated()
    if not reason or not reason.strip():
        raise BadInput("--reason is required: say why production is rolled back")
    get_model(client, name)
    with model_lock.hold(client, name, "rollback", _recover(client, name)) as lock:
        model = get_model(client, name)
        current = alias_map(model).get(names.champion)
        stack = audit.champion_stack(audit.read(client, name))
        if not stack:
            raise BadInput(f"model {name!r} has no promotion in its audit record; there is nothing to roll back to")
        if current != stack[-1]:
            raise Refused(
                f"@{names.champion} of {name!r} is {_v(current)} but the audit record says {_v(stack[-1])}: "
                "the alias was moved outside the toolkit; nothing was changed",
                hint="inspect with status.py --audit, then promote explicitly with --force --reason",
            )
        earlier = stack[:-1]
        if to_version is not None:
            if to_version not in earlier:
                raise BadInput(
                    f"version {to_version} of {name!r} was not a champion before v{current}",
                    hint=f"earlier champions: {', '.join('v' + v for v in earlier) or 'none'}",
                )
            target = to_version
        elif earlier:
            target = earlier[-1]
        else:
            raise BadInput(
                f"model {name!r} has no previous champion to roll back to (v{current} is the first)"
            )
        below = earlier[: len(earlier) - 1 - earlier[::-1].index(target)]
        target_mv = get_version(client, name, target)
        event = audit.new_event(
            "rollback", name, target, previous_version=current, alias=names.champion,
            reason=reason, actor_name=actor, details={"rolled_back_from": current},
        )
        steps = [_set_alias(names.champion, target)]
        steps.append(_set_alias(names.previous, below[-1]) if below else _delete_alias(names.previous))
        if is_archived(target_mv):
            steps.append(_delete_tag(target, tags.ARCHIVED_AT))
        if legacy_stages:
            steps.append(_legacy_stage(target, "Production", archive_existing=True))
        _execute(client, lock, model, steps, event)
    return _result("rollback", name, target, True, f"@{names.champion} rolled back to v{target} (was v{current})", event)


def _v(version: str | None, empty: str = "no champion") -> str:
    return f"v{version}" if version else empty
