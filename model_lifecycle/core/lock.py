"""A per-model mutex built on the one atomic primitive the MLflow registry offers.

MLflow has no compare-and-set on aliases (last write wins). Creating a registered model, however,
fails with RESOURCE_ALREADY_EXISTS when the name is taken, atomically on every SQL backend. So the
lock is a registered model named ``<model>.lifecycle-lock``: created to acquire, deleted to release.
Its tags say who holds it, until when, and what it is about to change (the *intent*), so that a
holder that dies half-way can be finished by the next caller instead of leaving a half-done state.

A lock is stale when it has expired (``LIFECYCLE_LOCK_TTL_SECONDS``, default 120 s), or at once when
its holder ran on this very machine and that process is gone. Breaking a stale lock has a narrow
race (two breakers at the same instant); it is only reached after a crash.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from model_lifecycle import settings
from model_lifecycle.adapters.registry import (
    is_already_exists,
    is_not_found,
    mlflow_errors,
    writer,
)
from model_lifecycle.errors import ServiceError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

LOCK_SUFFIX = ".lifecycle-lock"
INTENT_TAG = "intent"


def _ttl_seconds() -> float:
    return settings.LOCK_TTL_SECONDS.get_float()


def _wait_seconds() -> float:
    # Long enough for a rerun after a crash on another machine to outlive the dead holder's TTL.
    wait = settings.LOCK_WAIT_SECONDS.get()
    return float(wait) if wait else _ttl_seconds() + 30


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


class Lock:
    """A held lock; ``set_intent`` records what is about to change, for crash recovery."""

    def __init__(self, client: "MlflowClient", model_name: str, token: str) -> None:
        self.client = client
        self.model_name = model_name
        self.name = lock_name(model_name)
        self.token = token
        # Set by the caller: the change is visible (committed) and all its steps are done (finished).
        self.committed = False
        self.finished = False

    def set_intent(self, intent: dict[str, Any]) -> None:
        with mlflow_errors():
            writer(self.client).set_registered_model_tag(self.name, INTENT_TAG, json.dumps(intent, sort_keys=True))


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _holder_tags(token: str, action: str) -> dict[str, str]:
    now = time.time()
    return {
        "token": token,
        "action": action,
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_namespace": _pid_namespace(),
        "pid": str(os.getpid()),
        "acquired_at": f"{now:.3f}",
        "expires_at": f"{now + _ttl_seconds():.3f}",
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(tags: dict[str, str]) -> bool:
    """Expired, or held by a process of this machine that no longer exists."""
    try:
        if time.time() > float(tags.get("expires_at", "0")):
            return True
        # Same kernel and same PID namespace: only then does "that PID is gone" mean the holder died
        # (containers sharing a hostname and kernel have PIDs of their own).
        same_machine = (tags.get("host") == socket.gethostname() and tags.get("boot_id") == _boot_id()
                        and tags.get("pid_namespace") == _pid_namespace() != "")
        return bool(same_machine and tags.get("pid") and not _pid_alive(int(tags["pid"])))
    except ValueError:
        return True


@contextmanager
def hold(
    client: "MlflowClient",
    model_name: str,
    action: str,
    recover: Callable[[dict[str, Any]], None],
) -> Iterator[Lock]:
    """Hold the model's lock for the block. ``recover(intent)`` finishes a dead holder's change.

    The lock is released when the block ends, unless the block failed after the change was
    committed and the release itself cannot reach the server: then the intent stays for recovery.
    """
    token = uuid.uuid4().hex
    name = lock_name(model_name)
    deadline = time.monotonic() + _wait_seconds()
    description = (
        f"Transient lock held by the model-promotion toolkit while it changes the aliases of "
        f"{model_name!r}. Safe to delete only if no promotion is running."
    )
    while True:
        try:
            with mlflow_errors():
                try:
                    client.create_registered_model(name, tags=_holder_tags(token, action), description=description)
                    break
                except Exception as exc:
                    if not is_already_exists(exc):
                        raise
            _break_if_stale(client, name, recover)
        except ServiceError:
            raise
        if time.monotonic() > deadline:
            raise ServiceError(
                f"model {model_name!r} stayed locked by another promotion for {_wait_seconds():.0f}s",
                hint=f"if no promotion is running, delete the registered model {name!r}",
            )
        time.sleep(0.1 + random.random() * 0.3)
    lock = Lock(client, model_name, token)
    try:
        yield lock
    finally:
        if lock.committed and not lock.finished:
            _expire(client, name)  # half-done: leave the intent for the next caller to finish at once
        else:
            _release(client, name, token)


def _break_if_stale(client: "MlflowClient", name: str, recover: Callable[[dict[str, Any]], None]) -> None:
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            return  # released meanwhile; try again
        raise
    tags = dict(held.tags or {})
    if not is_stale(tags):
        return
    intent = tags.get(INTENT_TAG)
    if intent:
        recover(json.loads(intent))
    try:
        # Narrow the race with another breaker: delete only the stale lock we looked at, not a
        # fresh one someone acquired in the meantime.
        if (client.get_registered_model(name).tags or {}).get("token") != tags.get("token"):
            return
        writer(client).delete_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise


def _expire(client: "MlflowClient", name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        writer(client).set_registered_model_tag(name, "expires_at", "0")
    except MlflowException:
        pass  # Unreachable server: the lock expires by itself after its TTL.


def _release(client: "MlflowClient", name: str, token: str) -> None:
    """Delete the lock if it is still ours (a stale-lock breaker may have taken it over)."""
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(name)
        if (held.tags or {}).get("token") == token:
            writer(client).delete_registered_model(name)
    except MlflowException:
        pass  # Unreachable server: the lock expires, and its intent lets the next caller finish.
