"""The audit record: who changed which model version's state, when, why, and on what evidence.

MLflow keeps no alias history and no record of who promoted what, so the toolkit keeps one inside
MLflow itself, where it lives with the registry and outlives any CI runner:

* an experiment named ``model-lifecycle-audit`` holds one run per registered model;
* every event is one tag on that run with the event as JSON. A change of a model's state (stage,
  promote, archive, rollback, and the ``recover``/``abandon``/``repair`` records of crash recovery)
  carries ``seq``, the number it claimed in the model's change sequence (``core/claims.py``), and
  is keyed ``audit.seq.<seq, ten digits>.<event-id>``: the record's order is the order in which
  changes were decided, whatever the writers' clocks say. Other events (``register``, and events
  written before sequence numbers existed) are keyed ``audit.<epoch-ms>.<event-id>`` and are read
  in among the sequenced ones by time.

Each event has its own key, so concurrent writers never overwrite each other and nothing is
rewritten (writing the same event twice, as a recovery does, writes identical bytes under the same
key). Readers merge every audit run of the model, so even two runs created by a race lose nothing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from model_lifecycle import settings, tags
from model_lifecycle.adapters.registry import experiment_id, mlflow_errors
from model_lifecycle.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import RegisteredModel

AUDIT_EXPERIMENT = "model-lifecycle-audit"
EVENT_TAG_PREFIX = "audit."
MODEL_TAG = tags.AUDIT_MODEL
SCHEMA_VERSION = 1
# Run tag values are limited to 8,000 characters; free text is capped so an event always fits.
_MAX_TEXT = 1500

# Actions that move the champion alias; the champion history is replayed from these.
CHAMPION_ACTIONS = ("promote", "rollback")


def actor(explicit: str | None = None) -> str:
    """Who acts: an explicit --actor, the GitHub user of the run, else user@host."""
    if explicit:
        return explicit
    if settings.GITHUB_ACTOR.get():
        return f"github:{settings.GITHUB_ACTOR.get()}"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def github_run_url() -> str | None:
    """The URL of the GitHub Actions run, when running in one (honours GitHub Enterprise hosts)."""
    server = settings.GITHUB_SERVER_URL.get()
    repo = settings.GITHUB_REPOSITORY.get()
    run_id = settings.GITHUB_RUN_ID.get()
    if server and repo and run_id:
        attempt = settings.GITHUB_RUN_ATTEMPT.get()
        suffix = f"/attempts/{attempt}" if attempt else ""
        return f"{server}/{repo}/actions/runs/{run_id}{suffix}"
    return None


def now_iso(epoch_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _cap(text: str | None, limit: int = _MAX_TEXT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def new_event(
    action: str,
    model: str,
    version: str | None,
    *,
    previous_version: str | None = None,
    alias: str | None = None,
    reason: str | None = None,
    actor_name: str | None = None,
    approver: str | None = None,
    approval: dict[str, Any] | None = None,
    evidence: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one event. Its id and time are fixed here so a retried write is the same event."""
    epoch_ms = int(time.time() * 1000)
    event: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "id": uuid.uuid4().hex,
        "epoch_ms": epoch_ms,
        "time": now_iso(epoch_ms),
        "actor": actor(actor_name),
        "action": action,
        "model": model,
        "version": version,
        "previous_version": previous_version,
        "alias": alias,
        "reason": _cap(reason),
        "approver": approver,
        "approval": {k: _cap(v) if isinstance(v, str) else v for k, v in (approval or {}).items() if v is not None}
        or None,
        "run_url": github_run_url(),
        "evidence": evidence or None,
        "details": details or None,
    }
    return fit(event)


# MLflow run tag values hold 8,000 characters; keep a margin for the JSON of the key fields.
MAX_EVENT_CHARS = 7500


def fit(event: dict[str, Any]) -> dict[str, Any]:
    """Drop empty fields and make the encoded event fit a run tag, shortening free text first.

    Refuses (bad input, before anything is changed) when even the shortened event does not fit,
    rather than letting the server truncate it into unreadable JSON."""
    event = {k: v for k, v in event.items() if v is not None}
    for limit in (_MAX_TEXT, 500, 100):
        if len(encode(event)) <= MAX_EVENT_CHARS:
            return event
        if isinstance(event.get("reason"), str):
            event["reason"] = _cap(event["reason"], limit)
        if isinstance(event.get("approval"), dict) and isinstance(event["approval"].get("comment"), str):
            event["approval"]["comment"] = _cap(event["approval"]["comment"], limit)
    if len(encode(event)) > MAX_EVENT_CHARS:
        raise BadInput("the audit event is too large for MLflow (over 7,500 characters); shorten --approver, "
                       "--actor or --evidence")
    return event


SEQ_KEY_PREFIX = f"{EVENT_TAG_PREFIX}seq."


def event_key(event: dict[str, Any]) -> str:
    """Sequenced events sort by their number, the others by time, so a tag listing reads as a log."""
    if event.get("seq") is not None:
        return f"{SEQ_KEY_PREFIX}{int(event['seq']):010d}.{event['id'][:16]}"
    return f"{EVENT_TAG_PREFIX}{event['epoch_ms']:013d}.{event['id'][:16]}"


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _audit_runs(client: "MlflowClient", model_name: str) -> list[Any]:
    """Every audit run of the model (normally one; more only after a creation race)."""
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if experiment is None:
        return []
    from model_lifecycle.adapters.registry import quote_filter_value

    runs: list[Any] = []
    token = None
    # Only this model's runs (the experiment has one per model): a name holding both quote characters
    # has no literal in MLflow's filter grammar, and then every run is read and compared here.
    quoted = quote_filter_value(model_name)
    wanted = f"tags.`{MODEL_TAG}` = {quoted}" if quoted is not None else ""
    while True:
        page = client.search_runs([experiment.experiment_id], wanted, max_results=1000, page_token=token)
        runs.extend(r for r in page if r.data.tags.get(MODEL_TAG) == model_name)
        token = page.token
        if not token:
            return runs


def audit_run_id(client: "MlflowClient", model: "RegisteredModel") -> str:
    """The model's audit run: from the model's tag when present, else found or created."""
    run_id = (model.tags or {}).get(tags.AUDIT_RUN)
    if run_id:
        return run_id
    with mlflow_errors():
        existing = _audit_runs(client, model.name)
        if existing:
            run_id = sorted(existing, key=lambda r: r.info.start_time)[0].info.run_id
        else:
            run = client.create_run(
                experiment_id(client, AUDIT_EXPERIMENT, {tags.EXPERIMENT_PURPOSE: "audit"}),
                run_name=model.name[:250],
                tags={MODEL_TAG: model.name, "mlflow.note.content": f"Audit record of model {model.name}"},
            )
            with contextlib.redirect_stdout(sys.stderr):  # MLflow prints a "View run" link
                client.set_terminated(run.info.run_id, "FINISHED")
            run_id = run.info.run_id
        client.set_registered_model_tag(model.name, tags.AUDIT_RUN, run_id)
    return run_id


def append(client: "MlflowClient", model: "RegisteredModel", event: dict[str, Any]) -> str:
    """Append one event; returns its key. Idempotent for the same event."""
    run_id = audit_run_id(client, model)
    key = event_key(event)
    with mlflow_errors():
        client.set_tag(run_id, key, encode(event))
    return key


def read(client: "MlflowClient", model_name: str) -> list[dict[str, Any]]:
    """All events of a model, oldest first."""
    events: dict[str, dict[str, Any]] = {}
    with mlflow_errors():
        for run in _audit_runs(client, model_name):
            for key, value in run.data.tags.items():
                if key.startswith(EVENT_TAG_PREFIX):
                    try:
                        events[key] = json.loads(value)
                    except json.JSONDecodeError:
                        events[key] = {"action": "unreadable", "raw": value[:200], "epoch_ms": 0, "id": key}
    return _in_order(events)


def _in_order(events: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Sequenced events by number; the others (keyed by time) merged in by their time."""
    sequenced = [events[k] for k in sorted(events) if k.startswith(SEQ_KEY_PREFIX)]
    timed = [events[k] for k in sorted(events) if not k.startswith(SEQ_KEY_PREFIX)]
    merged: list[dict[str, Any]] = []
    i = j = 0
    while i < len(timed) and j < len(sequenced):
        if _epoch(timed[i]) <= _epoch(sequenced[j]):
            merged.append(timed[i])
            i += 1
        else:
            merged.append(sequenced[j])
            j += 1
    return merged + timed[i:] + sequenced[j:]


def _epoch(event: dict[str, Any]) -> int:
    try:
        return int(event.get("epoch_ms", 0))
    except (TypeError, ValueError):
        return 0


def champion_stack(events: Iterable[dict[str, Any]]) -> list[str]:
    """Replay promotions (push) and rollbacks (pop) into the stack of champions, current last.

    Rollback returns to the champion *before* the current one as recorded, not "version minus one".
    A champion that existed before the toolkit (the ``previous_version`` of the first recorded
    promotion) starts the stack, so the first promotion can be rolled back too.
    """
    stack: list[str] = []
    for event in events:
        _replay_champion(stack, event)
    return stack


def _replay_champion(stack: list[str], event: dict[str, Any]) -> None:
    if event.get("action") == "promote":
        if not stack and event.get("previous_version") is not None:
            stack.append(str(event["previous_version"]))
        stack.append(str(event["version"]))
    elif event.get("action") == "rollback":
        target = str(event["version"])
        while stack and stack[-1] != target:
            stack.pop()
        if not stack:
            stack.append(target)


ROLES = ("champion", "previous", "challenger")


def expected_aliases(events: Iterable[dict[str, Any]]) -> dict[str, str | None]:
    """The champion, previous champion and challenger the record implies (None: the alias is unset).

    Replays what each recorded change's steps do to the three aliases; a role no recorded change
    ever touched is left out (the record says nothing about it). Used to find and undo late writes."""
    state: dict[str, str | None] = {}
    stack: list[str] = []
    for event in events:
        action = event.get("action")
        version = None if event.get("version") is None else str(event["version"])
        if action == "promote":
            previous = event.get("previous_version")
            _replay_champion(stack, event)
            if previous is not None:
                state["previous"] = str(previous)
            state["champion"] = version
            if state.get("challenger") == version:
                state["challenger"] = None
        elif action == "rollback":
            _replay_champion(stack, event)
            state["champion"] = version
            state["previous"] = stack[-2] if len(stack) > 1 else None
        elif action == "stage":
            state["challenger"] = version
        elif action == "archive":
            for role, held in list(state.items()):
                if held == version:
                    state[role] = None
        elif action == "repair":
            for role, value in ((event.get("details") or {}).get("aliases") or {}).items():
                if role in ROLES:
                    state[role] = None if value is None else str(value)
    return state


def champion_at(events: Iterable[dict[str, Any]], epoch_ms: int) -> str | None:
    """Which version was champion at a moment, by replaying the record up to it."""
    stack = champion_stack(e for e in events if int(e.get("epoch_ms", 0)) <= epoch_ms)
    return stack[-1] if stack else None


def parse_timestamp(text: str) -> int:
    """ISO 8601 (``2026-11-27T10:00:00Z``) or epoch seconds/milliseconds -> epoch milliseconds."""
    value = text.strip()
    if value.isdigit():
        number = int(value)
        return number if number > 10**11 else number * 1000
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(
            f"--at {text!r} is not a timestamp",
            hint="use ISO 8601 like 2026-11-27T10:00:00Z, or epoch seconds",
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)
