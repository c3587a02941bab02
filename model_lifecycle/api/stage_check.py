"""The staging deployment check of a version: serve it (or call the team's staging URL), then check
serving parity, a bounded load against the latency budget, and malformed requests (see
``core.staging``). The result is tagged on the version (``lifecycle.staging.*``), so the promote job
and the model card find it in the registry; a failure refuses with the full result.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_lifecycle import tags
from model_lifecycle.adapters import registry
from model_lifecycle.errors import EXIT_REFUSED, Refused
from model_lifecycle.results import Result


@dataclass(frozen=True)
class StageCheckRequest:
    model: str
    version: str | int
    policy: str = "model-policy.yml"
    holdout: str | None = None
    endpoint: str | None = None  # a staging URL; default: the policy's staging.endpoint, else a local `serve`
    output: str = "stage-check.json"
    tracking_uri: str | None = None


@dataclass
class StageCheckResult(Result):
    model: str
    version: str
    endpoint: str
    passed: bool
    checks: list[dict[str, Any]]
    sha256: str
    summary: str = field(default="", repr=False)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 0 if self.passed else EXIT_REFUSED


def stage_check(request: StageCheckRequest) -> StageCheckResult:
    import mlflow
    import mlflow.pyfunc

    from model_lifecycle.core import evaluation, policy as policies, staging

    policy = policies.load(request.policy)
    rules = getattr(policy, "staging", None) or staging.StagingPolicy()
    version = registry.parse_version(request.version)
    client = registry.connect(request.tracking_uri)
    registry.get_version(client, request.model, version)
    holdout = evaluation.prepare_holdout(policy, request.holdout)
    model = mlflow.pyfunc.load_model(f"models:/{request.model}/{version}")
    features = _features(model, holdout.frame, policy.holdout.target)
    endpoint = request.endpoint or rules.endpoint
    server = None if endpoint else _LocalServer(mlflow.get_tracking_uri(), request.model, version).start()
    url = (endpoint or server.url).rstrip("/")
    try:
        checks = [staging.parity(url, model, features, rules), staging.load(url, features, rules),
                  staging.malformed(url, features)]
    finally:
        if server is not None:
            server.stop()
    passed = all(c["passed"] for c in checks)
    document = {"model": request.model, "version": version, "endpoint": endpoint or "local serve", "passed": passed,
                "checks": checks}
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    Path(request.output).write_text(text + "\n", encoding="utf-8")
    with registry.mlflow_errors():
        for key, value in ((tags.STAGING_PASSED, str(passed).lower()), (tags.STAGING_SHA256, digest)):
            client.set_model_version_tag(request.model, version, key, value)
    rows = "\n".join(f"| {c['name']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |" for c in checks)
    result = StageCheckResult(request.model, version, document["endpoint"], passed, checks, digest, summary=(
        f"### Staging deployment check of `{request.model}` v{version}\n\n"
        f"| check | result | detail |\n|---|---|---|\n{rows}"))
    if not passed:
        failed = "; ".join(f"{c['name']}: {c['detail']}" for c in checks if not c["passed"])
        raise Refused(failed, result=result, title="Staging check failed")
    return result


def _features(model: Any, frame: Any, target: str) -> Any:
    """The hold-out columns the model takes (its signature's inputs, else all but the target)."""
    schema = model.metadata.get_input_schema()
    names = schema.input_names() if schema is not None and schema.has_input_names() else None
    return frame[names] if names else frame.drop(columns=[target])


class _LocalServer:
    """The version served by the toolkit's own ``serve`` in a process of its own (its own imports and
    environment, as in production), on a free loopback port."""

    def __init__(self, tracking_uri: str, model_name: str, version: str) -> None:
        from model_lifecycle.edges.local_server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "model_lifecycle", "serve", "--tracking-uri", tracking_uri,
                     "--model", model_name, "--version", version, "--port", str(self.port), "--poll-seconds", "3600"]

    def start(self, timeout: float = 120) -> "_LocalServer":
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Refused(f"the version could not be served: {self.process.stderr.read().strip()[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise Refused(f"the version did not become healthy within {timeout:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
