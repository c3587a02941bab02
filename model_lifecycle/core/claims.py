"""Every change to a model is claimed first: the next number of the model's change sequence.

MLflow has no compare-and-set (aliases are last-write-wins) and no conditional write. It has one
thing it makes unique on every SQL backend: experiment names (creating a taken name fails with
RESOURCE_ALREADY_EXISTS, also when that experiment was deleted). So change number ``n`` of model
``M`` is *claimed* by creating the experiment ``model-lifecycle-claims/M/<n, ten digits>``:

* a caller reads the model once: its aliases and ``lifecycle.change_seq`` (the last complete change,
  ``p``), decides (compare-and-set, challenger check, ...) and claims ``p + 1`` with the change's
  *intent* (its idempotent steps, the first being the commit, and its audit event) in the claim's
  tags. Two callers that read the same state race for the same number: exactly one creates it. The
  other finds it taken, waits until that change is complete, reads again and decides again (the
  compare-and-set then refuses). A no-op or a refusal is only answered once the number after the
  state it read is still unclaimed, so it too describes a state that really was the latest.
* the holder checks that ``n + 1`` is unclaimed right before its commit and again after its last
  write (fencing), writes the audit event (which carries ``seq: n``), sets ``change_seq = n`` and
  deletes its claim: a deleted claim is a complete change, and it no longer shows in the
  Experiments list. Creating experiments fires no model-registry webhook and adds nothing to the
  Models page.
* a claim that is not complete and whose holder is gone (expired after ``LIFECYCLE_LOCK_TTL_SECONDS``,
  or a dead process of this machine and PID namespace) is taken over by whoever claims the number
  after it. Only after that claim exists (so the old holder is fenced off) does the taker look: if
  the commit is visible it finishes the change (replays the steps, writes the very same event) and
  records ``recover``; otherwise it records ``abandon``. Either way the sequence moves on.
* a holder that finds a later number claimed has been taken over. It waits for the takeover to
  complete; if its change was finished it succeeds, otherwise it fails with exit 1. Writes it made
  that may have landed after the takeover (*late writes*) are undone from the audit record by a
  ``repair`` change (itself claimed like any other).

What this cannot do: a write request already sent can reach the server after a takeover (a stalled
network, a client retry after a timeout, a process killed with a request in flight). The writer
detects that itself when it is still running, the taker re-reads the commit after abandoning it,
and ``status`` reports any such late write it finds; see the README, "How it stays correct".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from model_lifecycle import settings, tags
from model_lifecycle.adapters.registry import alias_map, get_model, is_already_exists, mlflow_errors, writer
from model_lifecycle.core import audit
from model_lifecycle.errors import BadInput, Refused, ServiceError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import RegisteredModel

CLAIMS_ROOT = "model-lifecycle-claims"
INTENT_TAG = "intent"
PURPOSE = "claim"
# Experiment names hold 500 characters, experiment tag values 20,000.
_MAX_MODEL_PART = 400
_MAX_INTENT = 20000
_RECOVERY_ACTIONS = ("recover", "abandon")


def _ttl_seconds() -> float:
    return settings.LOCK_TTL_SECONDS.get_float()


def _wait_seconds() -> float:
    # Long enough for a rerun after a crash on another machine to outlive the dead holder's TTL.
    wait = settings.LOCK_WAIT_SECONDS.get()
    return float(wait) if wait else _ttl_seconds() + 30


def slot_name(model_name: str, seq: int) -> str:
    """The experiment that claims change ``seq`` of the model (its name is the claim)."""
    part = model_name
    if len(part) > _MAX_MODEL_PART:
        part = "sha256-" + hashlib.sha256(model_name.encode()).hexdigest()
    return f"{CLAIMS_ROOT}/{part}/{seq:010d}"


def recorded_seq(model: "RegisteredModel") -> int:
    """The number of the model's last complete change (0 before the first)."""
    try:
        return int((model.tags or {}).get(tags.CHANGE_SEQ) or 0)
    except ValueError:
        return 0


# --- who holds a claim, and whether that holder is gone -------------------------------------------


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """When the process started (clock ticks since boot): tells a live holder from a reused PID."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_tags(token: str, action: str) -> dict[str, str]:
    now = time.time()
    return {
        "token": token,
        "action": action,
        "actor": audit.actor(),
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_namespace": _pid_namespace(),
        "pid": str(os.getpid()),
        "pid_start": _process_start(os.getpid()),
        "acquired_at": f"{now:.3f}",
        "expires_at": f"{now + _ttl_seconds():.3f}",
    }


def is_stale(holder: dict[str, str]) -> bool:
    """Expired, or held by a process of this machine and PID namespace that no longer exists."""
    try:
        if time.time() > float(holder.get("expires_at", "0")):
            return True
        same_machine = (holder.get("host") == socket.gethostname() and holder.get("boot_id") == _boot_id()
                        and holder.get("pid_namespace") == _pid_namespace() != "")
        if not same_machine or not holder.get("pid"):
            return False
        pid = int(holder["pid"])
        if not _pid_alive(pid):
            return True
        started = holder.get("pid_start")
        return bool(started) and _process_start(pid) not in ("", started)
    except ValueError:
        return True


# --- the claims themselves ------------------------------------------------------------------------


@dataclass
class Claim:
    """Change number ``seq`` as the server holds it: who claimed it, what it intends, whether it is complete."""

    model: str
    seq: int
    experiment_id: str
    tags: dict[str, str]
    active: bool  # deleted means complete

    @property
    def token(self) -> str:
        return self.tags.get("token", "")

    @property
    def intent(self) -> dict[str, Any]:
        try:
            found = json.loads(self.tags.get(INTENT_TAG) or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def stale(self) -> bool:
        return is_stale(self.tags)

    def describe(self) -> str:
        intent = self.intent
        what = self.tags.get("action", "change")
        if intent.get("kind") == "resolve":
            what = f"taking over change #{intent.get('target')}"
        else:
            version = next((e.get("version") for e in intent.get("events", [])[-1:]), None)
            what += f" v{version}" if version else ""
        since = self.tags.get("acquired_at", "")
        when = audit.now_iso(int(float(since) * 1000)) if since.replace(".", "", 1).isdigit() else "?"
        return (f"change #{self.seq} ({what} by {self.tags.get('actor', '?')} on {self.tags.get('host', '?')}, "
                f"pid {self.tags.get('pid', '?')}, since {when})")


def read_claim(client: "MlflowClient", model_name: str, seq: int) -> Claim | None:
    with mlflow_errors():
        found = client.get_experiment_by_name(slot_name(model_name, seq))
    if found is None:
        return None
    return Claim(model_name, seq, found.experiment_id, dict(found.tags or {}), found.lifecycle_stage == "active")


def create_claim(client: "MlflowClient", model_name: str, seq: int, action: str,
                 intent: dict[str, Any]) -> tuple[bool, Claim | None]:
    """Claim change ``seq``: (True, claim) if this caller holds it now, else (False, the existing claim).

    A create whose reply was slow is retried by the MLflow client and answered "already exists":
    the claim's token tells that it is this caller's own."""
    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    encoded = json.dumps(intent, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(encoded) > _MAX_INTENT:
        raise BadInput(f"the change is too large to record ({len(encoded)} characters of intent); shorten --reason")
    claim_tags = {
        **_holder_tags(token, action),
        INTENT_TAG: encoded,
        tags.EXPERIMENT_PURPOSE: PURPOSE,
        "mlflow.note.content": f"Change #{seq} of model {model_name} by the model-promotion toolkit, deleted "
                               "once complete. Do not restore or rename it.",
    }
    name = slot_name(model_name, seq)
    with mlflow_errors():
        try:
            experiment_id = client.create_experiment(name, tags=claim_tags)
            return True, Claim(model_name, seq, experiment_id, claim_tags, True)
        except MlflowException as exc:
            if not is_already_exists(exc):
                raise
    existing = read_claim(client, model_name, seq)
    if existing is not None and existing.token == token:
        return True, existing
    return False, existing


def _delete(client: "MlflowClient", claim: Claim) -> None:
    """Hide a complete claim. Best effort: its name stays taken either way, and change_seq has moved on."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_experiment(claim.experiment_id)
    except MlflowException:
        pass  # already deleted, or not ours to delete (per-experiment permissions)


def _expire(client: "MlflowClient", claim: Claim) -> None:
    """After a failure: let the next caller take the change over at once instead of after the TTL."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_experiment_tag(claim.experiment_id, "expires_at", "0")
    except (MlflowException, OSError):
        pass  # unreachable server: the claim expires by itself


def _failpoint(name: str) -> None:
    """Test hook: ``LIFECYCLE_FAILPOINT=after-claim|after-commit|before-seq`` kills the process there,
    which is how the tests prove that a crash at any point is finished (or abandoned) by the next caller."""
    if settings.FAILPOINT.get() == name:
        os._exit(70)


# --- running a change -------------------------------------------------------------------------------


@dataclass
class Plan:
    """A decided change: idempotent steps (the first is the commit), its audit event, and the result
    to return once it is complete."""

    steps: list[dict[str, Any]]
    event: dict[str, Any]
    done: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)  # set by run(): every event to append
    release: list[int] = field(default_factory=list)  # claims this change completes besides its own
    late: dict[str, Any] = field(default_factory=dict)  # the intent whose writes a repair would undo
    taker: bool = False  # finishes or abandons another holder's change


class Steps(Protocol):
    """How steps act on the registry; supplied by core.lifecycle."""

    def apply(self, step: dict[str, Any]) -> None: ...

    def committed(self, step: dict[str, Any]) -> bool: ...

    def repair(self, intent: dict[str, Any]) -> Callable[["RegisteredModel"], Any]: ...


def touched_aliases(steps: list[dict[str, Any]]) -> list[str]:
    return sorted({s["alias"] for s in steps if s.get("op") in ("set_alias", "delete_alias")})


class Sequencer:
    """Runs changes of one model through its claim sequence."""

    def __init__(self, client: "MlflowClient", model_name: str, steps: Steps) -> None:
        self.client = client
        self.name = model_name
        self.steps = steps
        self.floor = 0  # a complete change seen in the claims, when change_seq lags behind it
        self.deadline = time.monotonic() + _wait_seconds()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, action: str, decide: Callable[["RegisteredModel"], Any]) -> Any:
        """Read, decide, claim, apply. ``decide(model)`` returns a Plan, or a result for a no-op, or
        raises Refused/BadInput; both of the latter are answered only on a state that was the latest."""
        while True:
            if time.monotonic() > self.deadline:
                raise ServiceError(f"model {self.name!r} kept changing for {_wait_seconds():.0f}s; nothing was changed",
                                   hint="rerun the step once the other changes are done")
            model = get_model(self.client, self.name)
            position = max(recorded_seq(model), self.floor)
            try:
                decision = decide(model)
            except (Refused, BadInput):
                if self._settled(position):
                    raise
                continue
            if not isinstance(decision, Plan):
                if self._settled(position):
                    return decision
                continue
            seq = position + 1
            decision.event["seq"] = seq
            decision.events = [decision.event]
            current = alias_map(model)
            intent = {"kind": "change", "steps": decision.steps, "events": decision.events,
                      "before": {a: current.get(a) for a in touched_aliases(decision.steps)}}
            decision.late = intent
            mine, claim = create_claim(self.client, self.name, seq, action, intent)
            if not mine or claim is None:
                self._await(seq)
                continue
            _failpoint("after-claim")
            return self._execute(claim, decision, model)

    def _settled(self, position: int) -> bool:
        """Whether nothing after ``position`` was claimed; if something was, see it through first."""
        if read_claim(self.client, self.name, position + 1) is None:
            return True
        self._await(position + 1)
        return False

    def _await(self, seq: int) -> None:
        """Return once change ``seq`` is complete, taking it over when its holder is gone."""
        while True:
            claim = read_claim(self.client, self.name, seq)
            if claim is None or not claim.active:
                self.floor = max(self.floor, seq)
                return
            if claim.stale():
                if recorded_seq(get_model(self.client, self.name)) >= seq:
                    self.floor = max(self.floor, seq)  # complete; its holder stopped before hiding it
                    return
                self._take_over(claim)
                continue
            if time.monotonic() > self.deadline:
                raise ServiceError(
                    f"model {self.name!r}: {claim.describe()} is still in progress after {_wait_seconds():.0f}s",
                    hint="if that process is gone, its claim is taken over once it expires "
                         "(LIFECYCLE_LOCK_TTL_SECONDS); rerun then",
                )
            time.sleep(0.1 + random.random() * 0.3)

    # -- applying a claimed change -----------------------------------------------------------------

    def _later_claimed(self, seq: int) -> bool:
        return read_claim(self.client, self.name, seq + 1) is not None

    def _execute(self, claim: Claim, plan: Plan, model: "RegisteredModel") -> Any:
        seq = claim.seq
        wrote = recorded = False
        try:
            if not self._later_claimed(seq):  # else: taken over before anything was written
                if plan.steps:
                    wrote = True
                    self.steps.apply(plan.steps[0])
                    _failpoint("after-commit")
                    for step in plan.steps[1:]:
                        self.steps.apply(step)
                if not self._later_claimed(seq):  # else: taken over meanwhile, writes may have landed late
                    for event in plan.events:
                        audit.append(self.client, model, event)
                    _failpoint("before-seq")
                    with mlflow_errors():
                        writer(self.client).set_registered_model_tag(self.name, tags.CHANGE_SEQ, str(seq))
                    recorded = True
        except BaseException:
            _expire(self.client, claim)  # the next caller takes the change over at once
            raise
        if not recorded:  # a later number was claimed: this holder was taken over
            return self._taken_over(claim, plan, wrote=wrote)
        self.floor = max(self.floor, seq)
        for other in plan.release:
            found = read_claim(self.client, self.name, other)
            if found is not None and found.active:
                _delete(self.client, found)
        _delete(self.client, claim)
        return plan.done

    def _taken_over(self, claim: Claim, plan: Plan, *, wrote: bool) -> Any:
        """Someone presumed this holder gone and claimed the next number: see the takeover through,
        undo what of ours landed late, and report the outcome it recorded."""
        self._await(claim.seq + 1)
        if wrote:
            Sequencer(self.client, self.name, self.steps).run("repair", self.steps.repair(plan.late))
        if plan.taker:
            return None
        if plan.event.get("id") in {e.get("id") for e in audit.read(self.client, self.name)}:
            return plan.done  # the taker saw the commit and finished the change
        raise Refused(
            f"model {self.name!r}: this {claim.tags.get('action', 'change')} (change #{claim.seq}) was taken over "
            f"and abandoned because it looked dead (no progress within {_ttl_seconds():g}s); "
            + ("its writes that landed late were undone; " if wrote else "")
            + "nothing was changed",
            hint="read the model's state again (status.py) and rerun the step",
        )

    # -- taking over a claim whose holder is gone --------------------------------------------------

    def _take_over(self, stale: Claim) -> None:
        """Claim the number after ``stale`` (fencing its holder off), then finish its change if the
        commit is visible, else record it abandoned."""
        intent = stale.intent
        if intent.get("kind") == "resolve":  # a taker that died itself: its target is still open
            target_seq, chain = int(intent.get("target", stale.seq)), [*intent.get("chain", []), stale.seq]
        else:
            target_seq, chain = stale.seq, [stale.seq]
        mine, claim = create_claim(self.client, self.name, stale.seq + 1, "recover",
                                   {"kind": "resolve", "target": target_seq, "chain": chain})
        if not mine or claim is None:
            self._await(stale.seq + 1)
            return
        _failpoint("after-claim")
        target = stale if target_seq == stale.seq else read_claim(self.client, self.name, target_seq)
        target_intent = target.intent if target is not None else {}
        steps = list(target_intent.get("steps") or [])
        outcome = self._recorded_outcome(chain) if len(chain) > 1 else None
        if outcome is None:
            outcome = "recover" if not steps or self.steps.committed(steps[0]) else "abandon"
        target_events = list(target_intent.get("events") or [])
        original = target_events[-1] if target_events else {}
        event = audit.new_event(
            outcome, self.name, original.get("version"),
            reason=f"change #{target_seq} was left unfinished by its holder",
            details={
                "of_seq": target_seq,
                "outcome": "finished" if outcome == "recover" else "abandoned",
                "action": original.get("action") or (target.tags.get("action") if target else None),
                "commit": steps[0] if steps else None,
                "before": target_intent.get("before"),
                "holder": {k: (target.tags if target else {}).get(k) for k in ("actor", "host", "pid", "acquired_at")},
                "took_over": chain if len(chain) > 1 else None,
            },
        )
        event["seq"] = claim.seq
        plan = Plan(steps if outcome == "recover" else [], event,
                    events=(target_events if outcome == "recover" else []) + [event], release=chain,
                    late=target_intent, taker=True)
        self._execute(claim, plan, get_model(self.client, self.name))
        if outcome == "abandon" and steps and self.steps.committed(steps[0]):
            # The abandoned commit landed after all (a late write): undo it from the audit record.
            Sequencer(self.client, self.name, self.steps).run("repair", self.steps.repair(target_intent))

    def _recorded_outcome(self, chain: list[int]) -> str | None:
        """What an earlier taker of the same change decided, when its event made it to the record."""
        later = set(chain[1:])
        for event in reversed(audit.read(self.client, self.name)):
            if event.get("seq") in later and event.get("action") in _RECOVERY_ACTIONS:
                return str(event["action"])
        return None


def pending(client: "MlflowClient", model: "RegisteredModel") -> Claim | None:
    """The claimed change after the last complete one, when there is one (in progress or left unfinished)."""
    seq = recorded_seq(model) + 1
    for _ in range(100):  # change_seq may lag behind complete claims (a late write of it)
        claim = read_claim(client, model.name, seq)
        if claim is None:
            return None
        if claim.active:
            return claim
        seq += 1
    return None
