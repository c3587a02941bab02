"""Verified roll-out: after @champion moves, every serving endpoint must report the new version.

Polls each endpoint's ``/health`` (the toolkit's ``serve`` answers ``{"version": ...}``) until it
serves the expected version or the deadline passes. When one does not, it names which; with
``rollout.on_failure: rollback`` in the policy it rolls @champion back through the lifecycle core
(audited, compare-and-set against the version that was promoted) and refuses.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.errors import EXIT_REFUSED, BadInput, Refused
from model_lifecycle.results import Result


@dataclass(frozen=True)
class RolloutRequest:
    model: str
    version: str | int | None = None  # expected version; default: the current @champion
    endpoints: tuple[str, ...] = ()  # default: the policy's rollout.endpoints
    policy: str | None = "model-policy.yml"
    deadline_seconds: float | None = None  # default: the policy's rollout.deadline_seconds
    on_failure: str | None = None  # notify | rollback; default: the policy's
    interval_seconds: float = 1.0
    require_endpoints: bool = True  # the action's step passes False: no endpoints listed = nothing to verify
    actor: str | None = None
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


@dataclass
class RolloutResult(Result):
    model: str
    version: str
    endpoints: dict[str, dict[str, Any]]  # url -> {"version": seen, "ok": bool, "seconds": ...}
    passed: bool
    rolled_back: bool = False
    rolled_back_to: str | None = None
    summary: str = field(default="", repr=False)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 0 if self.passed else EXIT_REFUSED


def _served_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as answer:
            return str(json.loads(answer.read()).get("version"))
    except (OSError, ValueError):
        return None


def verify_rollout(request: RolloutRequest) -> RolloutResult:
    from model_lifecycle.core import policy as policies
    from model_lifecycle.core.staging import RolloutPolicy

    rules = policies.load(request.policy).rollout if request.policy else RolloutPolicy()  # "" = no policy file
    endpoints = tuple(request.endpoints) or tuple(rules.endpoints)
    if not endpoints and not request.require_endpoints:
        return RolloutResult(request.model, str(request.version or ""), {}, True,
                             summary="No serving endpoints listed (rollout.endpoints): roll-out not verified.")
    if not endpoints:
        raise BadInput("no serving endpoints to verify", hint="list them under rollout.endpoints in the policy, or --endpoint URL")
    deadline = request.deadline_seconds if request.deadline_seconds is not None else rules.deadline_seconds
    on_failure = request.on_failure or rules.on_failure
    if on_failure not in ("notify", "rollback"):
        raise BadInput(f"--on-failure must be notify or rollback, got {on_failure!r}")
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    expected = (registry.parse_version(request.version) if request.version is not None
                else registry.alias_map(registry.get_model(client, request.model)).get(names.champion))
    if not expected:
        raise BadInput(f"model {request.model!r} has no @{names.champion} to verify")
    started = time.monotonic()
    seen: dict[str, dict[str, Any]] = {url: {"version": None, "ok": False} for url in endpoints}
    while True:
        for url, state in seen.items():
            if not state["ok"]:
                state["version"] = _served_version(url)
                if state["version"] == expected:
                    state.update(ok=True, seconds=round(time.monotonic() - started, 2))
        if all(s["ok"] for s in seen.values()) or time.monotonic() - started >= deadline:
            break
        time.sleep(request.interval_seconds)
    late = [url for url, s in seen.items() if not s["ok"]]
    rows = "\n".join(f"| {url} | {s['version'] or 'no answer'} | {'✔' if s['ok'] else '**✘**'} |" for url, s in seen.items())
    result = RolloutResult(request.model, expected, seen, not late, summary=(
        f"### Roll-out of `{request.model}` v{expected}\n\n| endpoint | serves | ok |\n|---|---|---|\n{rows}"))
    if not late:
        return result
    reason = (f"roll-out of v{expected} not verified within {deadline:g} s: "
              + ", ".join(f"{url} serves {seen[url]['version'] or 'nothing (no answer)'}" for url in late))
    if on_failure == "rollback":
        from model_lifecycle.api import lifecycle

        change = lifecycle.rollback(lifecycle.RollbackRequest(
            request.model, reason, actor=request.actor, aliases=names, tracking_uri=request.tracking_uri))
        result.rolled_back, result.rolled_back_to = change.changed, change.version
        reason += f"; @{names.champion} rolled back to v{change.version}"
    raise Refused(reason, result=result, title="Roll-out not verified")
