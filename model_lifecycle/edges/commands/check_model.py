"""Model checks before the gate: signature, hold-out conformance, finite in-range predictions,
batch latency p95 and model size within budget, and the repository's own tests run against the model.

The repository's tests get the model's URI in $MODEL_URI (command from the policy's tests.command,
default `pytest`, or --tests-command). Exit 0 all checks pass, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import EXIT_OK, EXIT_REFUSED, BadInput, Refused

EXAMPLES = """\
  python scripts/check_model.py --model-uri models:/churn/7 --policy model-policy.yml
  python scripts/check_model.py --model-uri models:/churn/7 --tests-command "pytest tests/model -q"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("check_model.py", __doc__.splitlines()[0], EXAMPLES)
    parser.add_argument("--model-uri", required=True, help="The model to check, e.g. models:/churn/7.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (default: model-policy.yml).")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--tests-command", help="Command for the repository's tests (default: the policy's tests.command).")
    parser.add_argument("--tests-dir", default=".", help="Where the tests command runs (default: current directory).")
    parser.add_argument("--no-tests", action="store_true", help="Run only the model checks, not the repository's tests.")
    parser.add_argument("--output", default="checks.json", help="Where the JSON report is written.")
    return parser


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


def run_tests(command: str, cwd: str, uri: str, timeout: int) -> dict[str, Any]:
    argv = shlex.split(command)
    if not argv:
        raise BadInput("--tests-command is empty")
    env = {**os.environ, "MODEL_URI": uri}
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise BadInput(f"tests command {argv[0]!r} not found", hint="set tests.command in the policy or --tests-command") from exc
    except subprocess.TimeoutExpired:
        return {"name": "repository tests", "passed": False, "detail": f"`{command}` timed out after {timeout}s"}
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    passed = done.returncode == 0 or (argv[0].endswith("pytest") and done.returncode == 5)
    return {
        "name": "repository tests", "passed": passed,
        "detail": f"`{command}` exited {done.returncode} in {time.monotonic() - started:.1f}s", "output": tail,
    }


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import evaluation
    from model_lifecycle.core import policy as policies
    from model_lifecycle.adapters import registry

    policy = policies.load(args.policy)
    registry.connect(args.tracking_uri)
    checks: list[dict[str, Any]] = []

    def record(name: str, fn: Any) -> Any:
        try:
            detail = fn()
            checks.append({"name": name, "passed": True, "detail": detail})
        except Refused as exc:  # the model's fault: recorded, and the remaining checks still run
            checks.append({"name": name, "passed": False, "detail": exc.one_line()})

    holdout = evaluation.prepare_holdout(policy, args.holdout)
    model = evaluation.load_model(args.model_uri)
    state: dict[str, Any] = {}

    def signature() -> str:
        state["features"] = evaluation.feature_frame(model, holdout.frame, policy.holdout.target, policy.checks.require_signature)
        return "present; the hold-out conforms" if model.features else "absent (allowed by the policy)"

    def predictions() -> str:
        if "features" not in state:
            raise Refused("skipped: no features (signature check failed)")
        evaluation.evaluate_uri(policy, holdout.frame, holdout.y, args.model_uri, {}, model=model)
        return f"{len(holdout.frame)} predictions, all finite" + (
            f" and within {list(policy.checks.prediction_range)}" if policy.checks.prediction_range else "")

    record("signature", signature)
    record("predictions", predictions)
    if policy.checks.latency_p95_ms is not None and "features" in state:
        def latency() -> str:
            fn = model.proba_fn or model.predict_fn
            p95 = latency_p95_ms(fn, state["features"], policy.checks.latency_batch_size, policy.checks.latency_repeats)
            verdict = f"p95 {p95:.1f} ms per batch of {policy.checks.latency_batch_size} (budget {policy.checks.latency_p95_ms:g} ms)"
            if p95 > policy.checks.latency_p95_ms:
                raise Refused(verdict)
            return verdict
        record("latency", latency)
    if policy.checks.max_model_size_mb is not None:
        def size() -> str:
            mb = model.size_bytes / 1e6
            verdict = f"{mb:.2f} MB (budget {policy.checks.max_model_size_mb:g} MB)"
            if mb > policy.checks.max_model_size_mb:
                raise Refused(verdict)
            return verdict
        record("model size", size)
    if not args.no_tests:
        checks.append(run_tests(args.tests_command or policy.tests.command, args.tests_dir, args.model_uri,
                                policy.tests.timeout_seconds))
    passed = all(c["passed"] for c in checks)
    report = {"model_uri": args.model_uri, "passed": passed, "checks": checks}
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = "\n".join(f"| {c['name']} | {'pass' if c['passed'] else '**FAIL**'} | {c['detail']} |" for c in checks)
    cli.append_step_summary(f"### Model checks for `{args.model_uri}`\n\n| check | result | detail |\n|---|---|---|\n{summary}")
    if not passed:
        failed = "; ".join(f"{c['name']}: {c['detail']}" for c in checks if not c["passed"])
        cli.report_error("Model checks failed", failed, EXIT_REFUSED)
    return {"ok": True, "exit_code": EXIT_OK if passed else EXIT_REFUSED, **report}


def render(result: dict[str, Any]) -> None:
    for check in result["checks"]:
        print(f"{'✔' if check['passed'] else '✘'} {check['name']}: {check['detail']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

