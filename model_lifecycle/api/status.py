"""Where a model stands: versions with aliases, state and lineage; the audit record; who was champion when."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_lifecycle import tags
from model_lifecycle.adapters import registry
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.results import Result


@dataclass(frozen=True)
class StatusRequest:
    model: str
    audit: bool = False  # include every recorded event
    at: str | None = None  # also answer: who was champion at this moment (ISO 8601 or epoch)
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


@dataclass
class StatusResult(Result):
    model: str
    aliases: dict[str, str]
    champion: str | None
    challenger: str | None
    previous_champion: str | None
    champion_history: list[str]
    drift: str | None = None
    pending: dict[str, Any] | None = None  # a change claimed but not complete (in progress, or half-done)
    at: dict[str, Any] | None = None
    versions: list[dict[str, Any]] | None = None
    audit: list[dict[str, Any]] | None = None
    omit_when_none = ("drift", "pending", "at", "versions", "audit")


def version_state(version: Any, aliases: list[str], names: AliasNames) -> str:
    for alias, state in ((names.champion, "champion"), (names.challenger, "challenger"),
                         (names.previous, "previous-champion")):
        if alias in aliases:
            return state
    return "archived" if registry.is_archived(version) else "registered"


def describe_version(version: Any, aliases: list[str], names: AliasNames) -> dict[str, Any]:
    found = version.tags or {}
    return {
        "version": str(version.version),
        "aliases": aliases,
        "state": version_state(version, aliases, names),
        "created": version.creation_timestamp,
        "source": version.source,
        "run_id": version.run_id,
        "git_commit": found.get(tags.GIT_COMMIT),
        "github_run_url": found.get(tags.GITHUB_RUN_URL),
        "datasets": {
            key.split(".")[2]: value
            for key, value in found.items()
            if key.startswith(tags.DATASET_PREFIX) and key.endswith(".sha256")
        },
        "archived_at": found.get(tags.ARCHIVED_AT),
        "champion_since": found.get(tags.CHAMPION_SINCE),
        "health": found.get(tags.MONITOR_STATUS),  # the last monitored window's status
        "last_window": {"end": found.get(tags.MONITOR_LAST_WINDOW_END), "run_id": found.get(tags.MONITOR_LAST_RUN_ID)}
        if found.get(tags.MONITOR_LAST_RUN_ID) else None,
    }


def status(request: StatusRequest) -> StatusResult:
    from model_lifecycle.core import audit, lifecycle

    names = request.aliases.validated()
    at_ms = audit.parse_timestamp(request.at) if request.at else None
    client = registry.connect(request.tracking_uri)
    model = registry.get_model(client, request.model)
    aliases = registry.alias_map(model)
    events = audit.read(client, request.model)
    stack = audit.champion_stack(events)
    result = StatusResult(request.model, aliases, aliases.get(names.champion), aliases.get(names.challenger),
                          aliases.get(names.previous), stack)
    result.pending = lifecycle.pending_change(client, model)
    result.drift = _drift(names, aliases.get(names.champion), stack[-1] if stack else None, events, result.pending)
    if at_ms is not None:
        result.at = {"time": audit.now_iso(at_ms), "champion": audit.champion_at(events, at_ms)}
        if not request.audit:
            return result
    versions = registry.list_versions(client, request.model)
    result.versions = [describe_version(v, registry.aliases_of(model, str(v.version)), names) for v in versions]
    if request.audit:
        result.audit = events
    return result


def _drift(names: AliasNames, champion: str | None, recorded: str | None, events: list[dict[str, Any]],
           pending: dict[str, Any] | None) -> str | None:
    """Why @champion disagrees with the audit record: a change still under way or left half-done, a
    late write of an abandoned change, or (none of those) a change made outside the toolkit."""
    if champion == recorded:
        return None
    alias = f"@{names.champion}"
    commit = (pending or {}).get("commit") or {}
    if pending and commit.get("alias") == names.champion and pending["committed"] and champion == commit.get("version"):
        state = ("its holder is gone: the next command on this model finishes it" if pending["holder_gone"]
                 else "its holder is still at work")
        return (
            f"{alias} is {champion} but the audit record says {recorded or 'none'}: {pending['description']} "
            f"is half-done (its commit is visible, its audit event not yet); {state}"
        )
    for event in reversed(events):
        late = (event.get("details") or {}).get("commit") or {}
        if (event.get("action") == "abandon" and late.get("alias") == names.champion
                and str(late.get("version")) == str(champion)):
            return (
                f"{alias} is {champion} but the audit record says {recorded or 'none'}: a late write of change "
                f"#{event['details'].get('of_seq')} ({event['details'].get('action')} v{champion}), which was "
                f"abandoned as #{event.get('seq')} because its holder looked dead; its alias write reached the "
                "server afterwards. Repair: lifecycle.repair() sets the aliases back to the audit record"
            )
    return (
        f"{alias} is {champion or 'unset'} but the audit record says "
        f"{recorded or 'none'}: the alias was changed outside the toolkit"
    )
