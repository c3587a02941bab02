"""The lifecycle core: stage, promote, archive and roll back model versions, each audited.

Every change follows one pattern, so that a failure half-way leaves either the old or the new state
and two callers that saw the same state can never both change it:

1. validate the request (bad input -> exit 2, nothing touched);
2. read the model (aliases, and the number of its last complete change) and decide: compare-and-set,
   challenger check -> a plan: a list of idempotent steps whose FIRST step is the commit point (the
   alias move, or the archive mark), plus the audit event; or a no-op; or a refusal;
3. claim the next number of the model's change sequence with that plan as its *intent*
   (``core/claims.py``): only one caller gets it; the others read again and decide again;
4. apply the steps (fenced: nobody claimed a later number), append the event, complete the claim.

If the process dies after the commit, the next caller takes its number over, sees the commit took
effect, replays the remaining steps and writes the very same event (same key, same bytes). If it
died before the commit, nothing had changed and the change is recorded as abandoned.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from model_lifecycle import settings, tags
from model_lifecycle.adapters.registry import (
    alias_map,
    aliases_of,
    get_model,
    get_version,
    is_already_exists,
    is_archived,
    is_not_found,
    mlflow_errors,
    validate_alias,
    writer,
)
from model_lifecycle.core import audit, claims
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


# --- steps: small idempotent operations, stored as JSON in the claim's intent ---------------------


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
        for attempt in (1, 2):
            try:
                if op == "set_alias":
                    client.set_registered_model_alias(name, step["alias"], step["version"])
                elif op == "delete_alias":
                    client.delete_registered_model_alias(name, step["alias"])
                elif op == "set_version_tag":
                    client.set_model_version_tag(name, step["version"], step["key"], step["value"])
                elif op == "delete_version_tag":
                    client.delete_model_version_tag(name, step["version"], step["key"])
                elif op == "legacy_stage":
                    with warnings.catch_warnings():  # stages are deprecated; the mirror is opt-in
                        warnings.simplefilter("ignore", FutureWarning)
                        client.transition_model_version_stage(
                            name, step["version"], step["stage"], archive_existing_versions=step["archive_existing"]
                        )
                else:  # pragma: no cover - plans are built in this module
                    raise ValueError(f"unknown step {op!r}")
                return
            except MlflowException as exc:
                if op.startswith("delete_") and is_not_found(exc):
                    return  # already gone: the step's effect is there
                # Two writers of the same step at once (a holder and the caller finishing its change)
                # race in the server's insert-or-update; the second attempt updates.
                if attempt == 2 or not (is_already_exists(exc) or "UNIQUE constraint" in str(exc)):
                    raise
                time.sleep(0.2)


def _committed(client: "MlflowClient", name: str, step: dict[str, Any]) -> bool:
    """Whether the commit step (always the first) is visible in the registry."""
    if step["op"] == "set_alias":
        return alias_map(get_model(client, name)).get(step["alias"]) == step["version"]
    if step["op"] == "delete_alias":
        return step["alias"] not in alias_map(get_model(client, name))
    if step["op"] == "set_version_tag":
        return (get_version(client, name, step["version"]).tags or {}).get(step["key"]) == step["value"]
    return False


class _Registry:
    """What the claim sequence needs from this module: applying steps, seeing a commit, repairing."""

    def __init__(self, client: "MlflowClient", name: str, names: AliasNames, actor: str | None) -> None:
        self.client, self.name, self.names, self.actor = client, name, names, actor

    def apply(self, step: dict[str, Any]) -> None:
        _apply(self.client, self.name, step)

    def committed(self, step: dict[str, Any]) -> bool:
        return _committed(self.client, self.name, step)

    def repair(self, intent: dict[str, Any]) -> Callable[[Any], Any]:
        touched = claims.touched_aliases(intent.get("steps") or [])
        return _repair_decision(self.client, self.name, self.names, touched, intent.get("before") or {},
                                actor=self.actor, reason="undo writes of an abandoned change that landed late",
                                late_events=intent.get("events") or [])


def _run(client: "MlflowClient", name: str, names: AliasNames, actor: str | None, action: str,
         decide: Callable[[Any], Any]) -> "Change":
    return claims.Sequencer(client, name, _Registry(client, name, names, actor)).run(action, decide)


def _repair_decision(client: "MlflowClient", name: str, names: AliasNames, touched: list[str],
                     before: dict[str, str | None], *, actor: str | None, reason: str,
                     late_events: list[dict[str, Any]] | tuple = ()) -> Callable[[Any], Any]:
    """Decide a repair: set each touched lifecycle alias back to what the audit record implies
    (or, for a role the record never set, to its value before the late change)."""
    role_of = {names.champion: "champion", names.previous: "previous", names.challenger: "challenger"}

    def decide(model: Any) -> Any:
        expected = audit.expected_aliases(audit.read(client, name))
        current = alias_map(model)
        steps, fixed, found = [], {}, {}
        for alias in sorted(touched, key=lambda a: a != names.champion):  # the champion first: the commit
            role = role_of.get(alias)
            if role is None or (role not in expected and alias not in before):
                continue
            want = expected[role] if role in expected else before[alias]
            if current.get(alias) != want:
                steps.append(_set_alias(alias, want) if want else _delete_alias(alias))
                fixed[role], found[role] = want, current.get(alias)
        champion = current.get(names.champion)
        if not steps:
            return _result("repair", name, champion, False, "the aliases agree with the audit record")
        late = [{"seq": e.get("seq"), "action": e.get("action"), "version": e.get("version")} for e in late_events]
        event = audit.new_event("repair", name, fixed.get("champion", champion), reason=reason, actor_name=actor,
                                details={"aliases": fixed, "found": found, "late": late or None})
        shown = ", ".join(f"@{a}={'unset' if fixed[role_of[a]] is None else 'v' + str(fixed[role_of[a]])}"
                          for a in touched if role_of.get(a) in fixed)
        return claims.Plan(steps, event, _result("repair", name, fixed.get("champion", champion), True,
                                                 f"repaired {shown} from the audit record", event))

    return decide


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


def verdict_problem(version: Any, champion: str | None) -> str | None:
    """Why the gate's recorded verdict does not allow this version into staging or production.

    Only a passing verdict against the current champion lets it in: otherwise a version that never
    went through the gate, or failed it, reaches production with two plain transitions. No verdict,
    a failed one, or one against another champion refuses (``--force --reason`` overrides, recorded)."""
    found = version.tags or {}
    passed = found.get(tags.VERDICT_PASSED)
    if passed is None:
        return "it has no gate verdict (run compare_baseline.py against the current champion)"
    if passed != "true":
        return f"its gate verdict failed ({tags.VERDICT_PASSED}={passed})"
    baseline = found.get(tags.VERDICT_BASELINE)
    if baseline is not None and baseline != (champion or "none"):
        compared = "no champion" if baseline == "none" else f"champion v{baseline}"
        now = f"the champion is v{champion} now" if champion else "there is no champion now"
        return f"its gate verdict compared it with {compared}, but {now}"
    return None


def _verdict_state(version: Any) -> str:
    """``details.verdict`` of the audit event: passed, failed or missing (a forced change says which)."""
    passed = (version.tags or {}).get(tags.VERDICT_PASSED)
    return "missing" if passed is None else "passed" if passed == "true" else "failed"


def _check_verdict(name: str, version: str, mv: Any, champion: str | None, force: bool, target: str) -> None:
    """Refuse (exit 1, nothing changed) unless the verdict allows ``target``, or the change is forced."""
    problem = verdict_problem(mv, champion)
    if problem and not force:
        raise Refused(
            f"version {version} of {name!r} cannot go to {target}: {problem}; nothing was changed",
            hint="run the gate against the current champion (compare_baseline.py), or pass --force --reason",
        )


# --- transitions -----------------------------------------------------------------------------------


def require_reason_for_force(force: bool, reason: str | None) -> None:
    if force and not reason:
        raise BadInput("--force needs --reason: say why the gate's verdict or the challenger rule is overridden")


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
    if force and not reason:
        raise BadInput("--force needs --reason: say why the gate's verdict or the archive mark is overridden")
    mv = get_version(client, name, version)
    if is_archived(mv) and not force:
        raise BadInput(
            f"version {version} of {name!r} is archived",
            hint="archived versions are not staged again; register a new version, or pass --force --reason",
        )

    def decide(model: Any) -> Any:
        aliases = alias_map(model)
        if aliases.get(names.champion) == version:
            raise BadInput(f"version {version} of {name!r} is already the champion; it cannot be the challenger")
        current = aliases.get(names.challenger)
        if current == version:
            return _result("stage", name, version, False, f"v{version} is already @{names.challenger}")
        _check_verdict(name, version, mv, aliases.get(names.champion), force, "staging")
        steps = [_set_alias(names.challenger, version)]
        if is_archived(mv):
            steps.append(_delete_tag(version, tags.ARCHIVED_AT))
        if legacy_stages:
            steps.append(_legacy_stage(version, "Staging"))
            if current:
                steps.append(_legacy_stage(current, "None"))
        event = audit.new_event(
            "stage", name, version, previous_version=current, alias=names.challenger,
            reason=reason, actor_name=actor, evidence={**verdict_evidence(mv), **(evidence or {})} or None,
            details={"forced": force, "verdict": _verdict_state(mv)} if force else {"verdict": _verdict_state(mv)},
        )
        return claims.Plan(steps, event, _result("stage", name, version, True, f"v{version} is now @{names.challenger}", event))

    return _run(client, name, names, actor, "stage", decide)


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
    gate: Callable[[Any], dict[str, Any] | None] | None = None,
    read: Any = None,
) -> Change:
    """Move the champion alias to ``version``, compare-and-set against ``expect_champion``.

    ``expect_champion`` is the champion the caller saw (a version, or "none" for no champion);
    when the champion moved since, nothing changes and Refused (exit 1) is raised. The previous
    champion keeps the previous-champion alias, so it stays reachable for rollback.

    ``gate`` (optional) runs once, only when the promotion is going to change the champion (never
    for the no-op of promoting the champion again), before the change is claimed, with the version as
    read here (so it is not read again): it may refuse (raise Refused), add to ``evidence``, and return
    details to record (the card gate does all three).

    ``read`` (optional) is the version as the caller already read it (the API reads it to report
    bad input before the approval look-ups): it is not read again. Either read comes before the
    change is claimed, so neither is fresher where it matters; the claim fences the alias moves.
    """
    names.validated()
    require_reason_for_force(force, reason)
    mv = read if read is not None else get_version(client, name, version)
    if is_archived(mv):
        raise BadInput(
            f"version {version} of {name!r} is archived",
            hint="stage it again first (transition --to staging --force --reason ...)",
        )
    evidence = evidence if evidence is not None else {}
    gated: list[dict[str, Any]] = []

    def decide(model: Any) -> Any:
        aliases = alias_map(model)
        current = aliases.get(names.champion)
        if current == version:
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
        _check_verdict(name, version, mv, current, force, "production")
        if gate is not None and not gated:
            gated.append(gate(mv) or {})
        event = audit.new_event(
            "promote", name, version, previous_version=current, alias=names.champion,
            reason=reason, actor_name=actor, approver=approver, approval=approval,
            evidence={**verdict_evidence(mv), **evidence} or None,
            details={"forced": force, "expected_champion": expect_champion, "was_challenger": challenger == version,
                     "verdict": _verdict_state(mv), **(details or {}), **(gated[0] if gated else {})},
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
        return claims.Plan(steps, event, _result(
            "promote", name, version, True, f"v{version} is now @{names.champion} (was {_v(current)})", event))

    return _run(client, name, names, actor, "promote", decide)


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
    expect_champion: str | None = None,
) -> Change:
    """Mark a version archived and remove its aliases. The champion is never archived.

    Retention passes ``protected_aliases`` (challenger, previous champion): a version holding one
    of them is kept. This is checked on aliases read afresh, within the claimed change, so a
    promotion that happened after retention made its plan is respected. ``expect_champion`` keeps
    the version unless @champion is still that version (the previous champion is archived only
    while the champion found stable still holds the alias).
    """
    names.validated()
    mv = get_version(client, name, version)
    if is_archived(mv):
        return _result("archive", name, version, False, f"v{version} is already archived")

    def decide(model: Any) -> Any:
        aliases = alias_map(model)
        held = [a for a in protected_aliases if aliases.get(a) == version]
        if expect_champion is not None and aliases.get(names.champion) != expect_champion:
            return _result("archive", name, version, False,
                           f"v{version} kept: @{names.champion} moved to {_v(aliases.get(names.champion))} "
                           f"since v{expect_champion} was found stable")
        if held:
            return _result("archive", name, version, False, f"v{version} kept: it is @{held[0]}")
        if aliases.get(names.champion) == version:
            raise BadInput(
                f"version {version} of {name!r} is @{names.champion} and cannot be archived",
                hint="promote another version or roll back first",
            )
        removed = aliases_of(model, version)
        event = audit.new_event(
            "archive", name, version, reason=reason, actor_name=actor,
            details={"removed_aliases": removed} if removed else None,
        )
        steps = [_set_tag(version, tags.ARCHIVED_AT, event["time"])]
        if reason:
            steps.append(_set_tag(version, tags.ARCHIVE_REASON, reason[:5000]))
        steps.extend(_delete_alias(alias) for alias in removed)
        if legacy_stages:
            steps.append(_legacy_stage(version, "Archived"))
        return claims.Plan(steps, event, _result("archive", name, version, True, f"v{version} archived", event))

    return _run(client, name, names, actor, "archive", decide)


def rollback(
    client: "MlflowClient",
    name: str,
    names: AliasNames,
    *,
    reason: str,
    to_version: str | None = None,
    actor: str | None = None,
    legacy_stages: bool = False,
    expect_champion: str | None = None,
    evidence: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
    refuse_archived: bool = False,
) -> Change:
    """Move the champion back to the previous champion *as recorded in the audit record*.

    ``expect_champion`` makes it a compare-and-set (monitoring rolls back only the version it
    watched); ``refuse_archived`` refuses a target that retention archived instead of restoring it."""
    names.validated()
    if not reason or not reason.strip():
        raise BadInput("--reason is required: say why production is rolled back")
    get_model(client, name)

    def decide(model: Any) -> Any:
        current = alias_map(model).get(names.champion)
        if expect_champion is not None and current != expect_champion:
            raise Refused(
                f"@{names.champion} of {name!r} is {_v(current)}, not v{expect_champion} as expected: "
                "it moved since you looked; nothing was changed",
                hint="the version that was judged is no longer the champion; judge the current one",
            )
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
        if refuse_archived and is_archived(target_mv):
            raise Refused(
                f"the previous champion of {name!r}, v{target}, is archived; nothing was changed",
                hint="restore it explicitly with rollback.py --to-version (which un-archives), or promote another version",
            )
        event = audit.new_event(
            "rollback", name, target, previous_version=current, alias=names.champion,
            reason=reason, actor_name=actor, evidence=evidence or None,
            details={"rolled_back_from": current, **(details or {})},
        )
        steps = [_set_alias(names.champion, target)]
        steps.append(_set_alias(names.previous, below[-1]) if below else _delete_alias(names.previous))
        if is_archived(target_mv):
            steps.append(_delete_tag(target, tags.ARCHIVED_AT))
        if legacy_stages:
            steps.append(_legacy_stage(target, "Production", archive_existing=True))
        return claims.Plan(steps, event, _result(
            "rollback", name, target, True, f"@{names.champion} rolled back to v{target} (was v{current})", event))

    return _run(client, name, names, actor, "rollback", decide)


def repair(
    client: "MlflowClient",
    name: str,
    names: AliasNames,
    *,
    reason: str | None = None,
    actor: str | None = None,
) -> Change:
    """Set @champion, @previous-champion and @challenger back to what the audit record implies.

    For a late write that nobody was left to undo (``status`` reports it): a write of a change that
    was abandoned reached the server after the change was taken over. A role the record never set
    is left alone. Recorded as a ``repair`` event; a no-op when the aliases agree with the record."""
    names.validated()
    get_model(client, name)
    decide = _repair_decision(client, name, names, [names.champion, names.previous, names.challenger], {},
                              actor=actor, reason=reason or "set the aliases back to the audit record")
    return _run(client, name, names, actor, "repair", decide)


def pending_change(client: "MlflowClient", model: Any) -> dict[str, Any] | None:
    """The change claimed after the last complete one, if any: in progress, or left half-done by a
    holder that is gone (the next change on the model then finishes or abandons it)."""
    claim = claims.pending(client, model)
    if claim is None:
        return None
    intent = claim.intent
    steps = intent.get("steps") or []
    event = (intent.get("events") or [{}])[-1]
    return {
        "seq": claim.seq,
        "action": event.get("action") or claim.tags.get("action"),
        "version": event.get("version"),
        "previous_version": event.get("previous_version"),
        "actor": claim.tags.get("actor"),
        "host": claim.tags.get("host"),
        "pid": claim.tags.get("pid"),
        "since": audit.now_iso(int(float(claim.tags.get("acquired_at") or 0) * 1000)),
        "holder_gone": claim.stale(),
        "committed": bool(steps) and _committed(client, model.name, steps[0]),
        "commit": steps[0] if steps else None,
        "description": claim.describe(),
    }


def _v(version: str | None, empty: str = "no champion") -> str:
    return f"v{version}" if version else empty
