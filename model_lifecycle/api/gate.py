"""The gate's steps: model checks, evaluation on the hold-out, and the comparison with @champion.

``compare`` writes the verdict and the report, logs the evaluation run, and tags the candidate
version with the verdict's digest: the registry, not a file, carries the gate's evidence to the
stage and promote jobs. A failing gate or check raises ``Refused`` carrying the full result.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_lifecycle import tags
from model_lifecycle.adapters import registry
from model_lifecycle.api.monitor import store_reference
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.errors import EXIT_REFUSED, BadInput, Refused
from model_lifecycle.results import Result

DEFAULT_EXPERIMENT = "model-evaluation"
_REGISTERED = re.compile(r"^models:/([^/@]+)(?:/(\d+)|@([A-Za-z0-9_-]+))$")


# --- compare: the gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRequest:
    model: str
    candidate: str | int
    policy: str = "model-policy.yml"
    baseline: str | int | None = None  # default: the version behind @champion
    holdout: str | None = None  # overrides the policy's holdout.path
    output: str = "verdict.json"
    report: str = "report.md"
    stage: bool = False  # on pass, set @challenger to the candidate (audited)
    experiment: str = DEFAULT_EXPERIMENT
    log: bool = True  # log an evaluation run and tag the version with the verdict
    reason: str | None = None
    actor: str | None = None
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None
    progress: Any = field(default=None, repr=False, compare=False)  # callable(done, total, what); edges show it
    engine: str | None = None  # "local" or "spark" (default: the policy's engine)


@dataclass
class CompareResult(Result):
    passed: bool
    model: str
    candidate: str
    baseline: str | None
    failures: list[str]
    verdict_path: str
    report_path: str
    verdict_sha256: str
    evaluation_run_id: str | None
    staged: bool
    summary: str = field(default="", repr=False)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 0 if self.passed else EXIT_REFUSED


def compare(request: CompareRequest) -> CompareResult:
    """Evaluate candidate and champion on the same hold-out and apply the policy's gates."""
    from model_lifecycle.core import evaluation, lifecycle
    from model_lifecycle.core import policy as policies
    from model_lifecycle.core import verdict as verdicts

    if request.stage and not request.log:
        raise BadInput("--stage needs the verdict recorded on the version: drop --no-log",
                       hint="staging reads the gate's verdict from the version's tags")
    policy = policies.load(request.policy)
    names = request.aliases.validated()
    candidate_version = registry.parse_version(request.candidate, "--candidate")
    baseline_version = registry.parse_version(request.baseline, "--baseline") if request.baseline else None
    client = registry.connect(request.tracking_uri)
    model = registry.get_model(client, request.model)
    candidate_mv = registry.get_version(client, request.model, candidate_version)
    if baseline_version is None:
        baseline_version = registry.alias_map(model).get(names.champion)
    if baseline_version == candidate_version:
        baseline_version = None  # re-evaluating the champion itself: floors only
    baseline_mv = registry.get_version(client, request.model, baseline_version) if baseline_version else None

    cand_uri = f"models:/{request.model}/{candidate_version}"
    base_uri = f"models:/{request.model}/{baseline_version}" if baseline_version else None
    uris = [cand_uri, *([base_uri] if base_uri else [])]
    holdout = evaluate_holdout(request, policy, uris)
    cand = holdout.evaluated[cand_uri]
    base = holdout.evaluated.get(base_uri) if base_uri else None

    checks = verdicts.decide(
        policy, cand.results, base.results if base else None, holdout.y,
        cand.predictions, base.predictions if base else None,
    )
    verdict = verdicts.build(
        model=request.model,
        candidate={"version": candidate_version, "uri": cand_uri, "source": candidate_mv.source},
        baseline={"version": baseline_version, "uri": base_uri, "source": baseline_mv.source} if baseline_mv else None,
        policy=policy, policy_path=str(Path(request.policy).resolve()), holdout=holdout.info, checks=checks,
        cand_results=cand.results, base_results=base.results if base else None,
    )
    digest = verdicts.digest(verdict)
    report = verdicts.render_markdown(verdict)
    verdict_text = json.dumps(verdict, indent=2, sort_keys=True, default=str)
    Path(request.output).write_text(verdict_text + "\n", encoding="utf-8")
    Path(request.report).write_text(report, encoding="utf-8")

    run_id = None
    if request.log:
        run_id = evaluation.log_evaluation(
            client, experiment=request.experiment, name=request.model, version=candidate_version, model_uri=cand_uri,
            source=candidate_mv.source, results=cand.results, holdout=holdout.info,
            documents={"verdict.json": verdict_text, "report.md": report},
        )
        store_reference(client, policy, request.model, candidate_version, run_id, holdout, cand)
        with registry.mlflow_errors():
            for key, value in ((tags.VERDICT_SHA256, digest), (tags.VERDICT_PASSED, str(verdict["passed"]).lower()),
                               (tags.VERDICT_RUN_ID, run_id), (tags.VERDICT_BASELINE, baseline_version or "none")):
                client.set_model_version_tag(request.model, candidate_version, key, value)
    staged = None
    if verdict["passed"] and request.stage:
        staged = lifecycle.stage(
            client, request.model, candidate_version, names, reason=request.reason or "passed the promotion gate",
            actor=request.actor, evidence={"verdict": digest},
        )
    result = CompareResult(
        passed=verdict["passed"], model=request.model, candidate=candidate_version, baseline=baseline_version,
        failures=verdict["failures"], verdict_path=str(Path(request.output).resolve()),
        report_path=str(Path(request.report).resolve()), verdict_sha256=digest, evaluation_run_id=run_id,
        staged=bool(staged and staged.changed), summary=report,
    )
    if not result.passed:  # the reasons are the result's (failures, report); the error line only counts them
        raise Refused(
            f"{request.model} v{candidate_version} fails the promotion gate: {len(verdict['failures'])} of "
            f"{len(checks)} checks failed (each reason is in {request.report} and {request.output})",
            result=result, title="Promotion gate failed",
        )
    return result


def evaluate_holdout(request: "CompareRequest | EvaluateRequest", policy: Any, uris: list[str]) -> Any:
    """The hold-out evaluated by the request's engine (``--engine``), else the policy's (``engine``):
    ``local`` reads it in pyarrow batches here; ``spark`` scores it with ``mlflow.pyfunc.spark_udf``
    and aggregates in Spark (``core/engines/spark.py``), imported only when chosen. The profile's
    sample is taken only when the evaluation is recorded."""
    from model_lifecycle.core import engines, evaluation

    engine = engines.chosen(request.engine, policy, "evaluate")
    sample_size = evaluation.SAMPLE_ROWS if request.log else 0
    if engine == "local":
        return evaluation.evaluate_holdout(policy, uris, request.holdout, progress=request.progress,
                                           sample_size=sample_size)
    from model_lifecycle.core.engines import spark

    path = request.holdout or spark.policy_source(request.policy, policy)
    return spark.evaluate_holdout(policy, uris, path, progress=request.progress, sample_size=sample_size)


# --- evaluate --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluateRequest:
    model_uri: str  # models:/<name>/<version>, models:/<name>@<alias> or any MLflow model URI
    policy: str = "model-policy.yml"
    holdout: str | None = None
    output: str = "evaluation.json"
    experiment: str = DEFAULT_EXPERIMENT
    log: bool = True
    tracking_uri: str | None = None
    progress: Any = field(default=None, repr=False, compare=False)  # callable(done, total, what); edges show it
    engine: str | None = None  # "local" or "spark" (default: the policy's engine)


@dataclass
class EvaluateResult(Result):
    output: str
    evaluation_run_id: str | None
    model_uri: str
    version: str | None
    rows: int
    overall: dict[str, Any]
    slices: int


def evaluate(request: EvaluateRequest) -> EvaluateResult:
    """Metrics overall and per slice with support and intervals; an evaluation run linked to the version."""
    from model_lifecycle.core import evaluation, verdict
    from model_lifecycle.core import policy as policies

    policy = policies.load(request.policy)
    client = registry.connect(request.tracking_uri)
    name = version = source = None
    match = _REGISTERED.match(request.model_uri)
    if match:
        name = match.group(1)
        if match.group(2):
            mv = registry.get_version(client, name, match.group(2))
        else:
            registry.get_model(client, name)  # a missing model is named as such, not as a missing alias
            with registry.mlflow_errors(not_found=f"model {name!r} has no alias @{match.group(3)}"):
                mv = client.get_model_version_by_alias(name, match.group(3))
        version, source = str(mv.version), mv.source
    holdout = evaluate_holdout(request, policy, [request.model_uri])
    evaluated = holdout.evaluated[request.model_uri]
    document = {
        "model_uri": request.model_uri, "model": name, "version": version, "holdout": holdout.info,
        "task": policy.task, "results": verdict.serialise_results(evaluated.results),
    }
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    Path(request.output).write_text(text + "\n", encoding="utf-8")
    run_id = None
    if request.log:
        run_id = evaluation.log_evaluation(
            client, experiment=request.experiment, name=name, version=version, model_uri=request.model_uri,
            source=source, results=evaluated.results, holdout=holdout.info, documents={"evaluation.json": text},
        )
        if name and version:
            store_reference(client, policy, name, version, run_id, holdout, evaluated)
    overall = evaluated.results[evaluation.OVERALL]
    return EvaluateResult(str(Path(request.output).resolve()), run_id, request.model_uri, version,
                          holdout.info["rows"], overall.metrics, len(evaluated.results) - 1)


# --- check: model checks and the repository's tests ----------------------------------------------


@dataclass(frozen=True)
class CheckRequest:
    model_uri: str
    policy: str = "model-policy.yml"
    holdout: str | None = None
    tests_command: str | None = None  # default: the policy's tests.command
    tests_dir: str = "."
    run_tests: bool = True
    output: str = "checks.json"
    tracking_uri: str | None = None


@dataclass
class CheckResult(Result):
    model_uri: str
    passed: bool
    checks: list[dict[str, Any]]
    summary: str = field(default="", repr=False)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 0 if self.passed else EXIT_REFUSED


def check(request: CheckRequest) -> CheckResult:
    """Signature, hold-out conformance, finite in-range predictions, latency and size budgets, and the
    repository's own tests with $MODEL_URI. Every check runs; any failure refuses with all of them."""
    from model_lifecycle.core import evaluation
    from model_lifecycle.core import policy as policies

    policy = policies.load(request.policy)
    registry.connect(request.tracking_uri)
    checks: list[dict[str, Any]] = []

    def record(name: str, fn: Any) -> None:
        try:
            checks.append({"name": name, "passed": True, "detail": fn()})
        except Refused as exc:  # the model's fault: recorded, and the remaining checks still run
            checks.append({"name": name, "passed": False, "detail": exc.one_line()})

    holdout = evaluation.prepare_holdout(policy, request.holdout)
    model = evaluation.load_model(request.model_uri)
    state: dict[str, Any] = {}

    def signature() -> str:
        state["features"] = evaluation.feature_frame(model, holdout.frame, policy.holdout.target,
                                                     policy.checks.require_signature)
        return "present; the hold-out conforms" if model.features else "absent (allowed by the policy)"

    def predictions() -> str:
        if "features" not in state:
            raise Refused("skipped: no features (signature check failed)")
        evaluation.evaluate_uri(policy, holdout.frame, holdout.y, request.model_uri, {}, model=model)
        return f"{len(holdout.frame)} predictions, all finite" + (
            f" and within {list(policy.checks.prediction_range)}" if policy.checks.prediction_range else "")

    record("signature", signature)
    record("predictions", predictions)
    if policy.checks.latency_p95_ms is not None and "features" in state:
        def latency() -> str:
            fn = model.proba_fn or model.predict_fn
            p95 = latency_p95_ms(fn, state["features"], policy.checks.latency_batch_size, policy.checks.latency_repeats)
            text = (f"p95 {p95:.1f} ms per batch of {policy.checks.latency_batch_size} "
                    f"(budget {policy.checks.latency_p95_ms:g} ms)")
            if p95 > policy.checks.latency_p95_ms:
                raise Refused(text)
            return text
        record("latency", latency)
    if policy.checks.max_model_size_mb is not None:
        def size() -> str:
            mb = model.size_bytes / 1e6
            text = f"{mb:.2f} MB (budget {policy.checks.max_model_size_mb:g} MB)"
            if mb > policy.checks.max_model_size_mb:
                raise Refused(text)
            return text
        record("model size", size)
    if request.run_tests:
        checks.append(run_tests(request.tests_command or policy.tests.command, request.tests_dir, request.model_uri,
                                policy.tests.timeout_seconds, policy.tests.requirements))
    passed = all(c["passed"] for c in checks)
    Path(request.output).write_text(
        json.dumps({"model_uri": request.model_uri, "passed": passed, "checks": checks}, indent=2) + "\n",
        encoding="utf-8")
    rows = "\n".join(f"| {c['name']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |" for c in checks)
    result = CheckResult(request.model_uri, passed, checks, summary=(
        f"### Model checks for `{request.model_uri}`\n\n| check | result | detail |\n|---|---|---|\n{rows}"))
    if not passed:  # each failed check's detail is in the result; the error line names them only
        failed = [c["name"] for c in checks if not c["passed"]]
        raise Refused(f"{request.model_uri}: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)}; "
                      f"details in {request.output})", result=result, title="Model checks failed")
    return result


def latency_p95_ms(predict: Any, features: Any, batch: int, repeats: int) -> float:
    """p95 wall time of predicting one batch, after one warm-up call."""
    import numpy as np

    sample = features.head(batch)
    if len(sample) < batch:  # small hold-outs: repeat rows to reach the batch size
        sample = features.sample(batch, replace=True, random_state=0)
    predict(sample)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(sample)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 95))


def run_tests(command: str, cwd: str, uri: str, timeout: int, requirements: str | None = None) -> dict[str, Any]:
    """The repository's own tests against the model ($MODEL_URI); pytest's "no tests" (5) passes.
    With ``tests.requirements`` they run in their own environment (``core/test_env.py``)."""
    from model_lifecycle.core import test_env

    argv = shlex.split(command)
    if not argv:
        raise BadInput("--tests-command is empty")
    venv = test_env.prepared(requirements, cwd, timeout)
    env = test_env.environment(venv, {**os.environ, "MODEL_URI": uri})
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise BadInput(f"tests command {argv[0]!r} not found",
                       hint="set tests.command in the policy or --tests-command; tests.requirements installs "
                            "what the tests need (pytest too)") from exc
    except subprocess.TimeoutExpired:
        return {"name": "repository tests", "passed": False, "detail": f"`{command}` timed out after {timeout}s"}
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    passed = done.returncode == 0 or (argv[0].endswith("pytest") and done.returncode == 5)
    return {
        "name": "repository tests", "passed": passed,
        "detail": f"`{command}` exited {done.returncode} in {time.monotonic() - started:.1f}s", "output": tail,
    }
