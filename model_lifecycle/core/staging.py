"""The staging deployment check: the challenger as a running service, measured from outside.

Three checks against an HTTP endpoint that serves the version (the toolkit's own ``serve``, or a
staging URL the team gives):

1. **parity**: the hold-out sent through ``/invocations`` must give the predictions that
   ``mlflow.pyfunc`` gives for the same version in process, within a tolerance. A difference means
   serving skew: other dependencies, schema enforcement, or input conversion on the way in;
2. **load**: a bounded load (concurrency x duration from the policy) with p50/p95/p99 latency and
   the error rate, against the policy's budget;
3. **malformed requests** (a wrong column, a wrong type, an empty body, broken JSON) must be answered
   400, never 500: a client's mistake must not look like an outage.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StagingPolicy(BaseModel):
    """``staging:`` in the policy file."""

    model_config = ConfigDict(extra="forbid")

    parity_tolerance: float = Field(1e-6, ge=0, description="Largest allowed |served - in-process| per prediction.")
    parity_rows: int = Field(2000, ge=1, description="Hold-out rows sent for the parity check.")
    batch_rows: int = Field(200, ge=1, description="Rows per request in the parity check.")
    concurrency: int = Field(4, ge=1, le=256, description="Concurrent clients of the load check.")
    duration_seconds: float = Field(5.0, gt=0, le=600, description="How long the load check runs.")
    load_batch_rows: int = Field(1, ge=1, description="Rows per request in the load check.")
    p95_ms: float | None = Field(None, gt=0, description="Budget: p95 latency in milliseconds.")
    p99_ms: float | None = Field(None, gt=0, description="Budget: p99 latency in milliseconds.")
    max_error_rate: float = Field(0.0, ge=0, le=1, description="Budget: share of failed load requests.")
    endpoint: str | None = Field(None, description="Check this staging URL instead of starting `serve`.")


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def split_payload(frame: Any) -> bytes:
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()


def parity(url: str, model: Any, features: Any, policy: StagingPolicy) -> dict[str, Any]:
    """Served predictions against in-process ``pyfunc`` predictions of the same rows."""
    import numpy as np

    rows = features.head(policy.parity_rows)
    served: list[Any] = []
    for start in range(0, len(rows), policy.batch_rows):
        code, body = post(f"{url}/invocations", split_payload(rows.iloc[start:start + policy.batch_rows]))
        if code != 200:
            return {"name": "parity", "passed": False,
                    "detail": f"the endpoint answered {code} to hold-out rows: {body[:300].decode(errors='replace')}"}
        served.extend(json.loads(body)["predictions"])
    local = np.asarray(model.predict(rows)).tolist()
    mismatches, largest = 0, 0.0
    for got, want in zip(served, local):
        if isinstance(got, (int, float)) and isinstance(want, (int, float)):
            gap = abs(float(got) - float(want))
            largest = max(largest, gap)
            mismatches += gap > policy.parity_tolerance or math.isnan(gap)
        else:
            mismatches += got != want
    passed = mismatches == 0 and len(served) == len(local)
    detail = (f"{len(served)} served predictions equal the in-process ones (largest difference {largest:.3g}, "
              f"tolerance {policy.parity_tolerance:g})" if passed else
              f"{mismatches} of {len(local)} served predictions differ from the in-process ones "
              f"(largest difference {largest:.3g}, tolerance {policy.parity_tolerance:g}): serving skew")
    return {"name": "parity", "passed": passed, "detail": detail, "rows": len(local), "mismatches": mismatches,
            "largest_difference": largest}


def load(url: str, features: Any, policy: StagingPolicy) -> dict[str, Any]:
    """``concurrency`` clients for ``duration_seconds``; latency percentiles and error rate against the budget."""
    import numpy as np

    bodies = [split_payload(features.iloc[i:i + policy.load_batch_rows])
              for i in range(0, min(len(features), 200 * policy.load_batch_rows), policy.load_batch_rows)]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + policy.duration_seconds

    def client(offset: int) -> None:
        i = offset
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                code, _ = post(f"{url}/invocations", bodies[i % len(bodies)], timeout=10)
            except OSError:
                code = 0
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += code != 200
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(policy.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = len(latencies)
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99)) if total else (math.inf,) * 3
    error_rate = errors[0] / total if total else 1.0
    over = []
    if policy.p95_ms is not None and p95 > policy.p95_ms:
        over.append(f"p95 {p95:.1f} ms > {policy.p95_ms:g} ms")
    if policy.p99_ms is not None and p99 > policy.p99_ms:
        over.append(f"p99 {p99:.1f} ms > {policy.p99_ms:g} ms")
    if error_rate > policy.max_error_rate:
        over.append(f"error rate {error_rate:.2%} > {policy.max_error_rate:.2%}")
    figures = (f"{total} requests from {policy.concurrency} clients in {policy.duration_seconds:g} s: "
               f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, error rate {error_rate:.2%}")
    return {"name": "load", "passed": not over, "detail": figures + (f"; over budget: {', '.join(over)}" if over else ""),
            "requests": total, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "error_rate": error_rate}


def malformed(url: str, features: Any) -> dict[str, Any]:
    """Client mistakes must be answered 400 (with MLflow's message), never 500."""
    first = features.head(2)
    wrong_column = first.rename(columns={first.columns[0]: f"{first.columns[0]}_not_a_feature"})
    wrong_type = first.copy()
    wrong_type[first.columns[0]] = "not a number"
    cases = {
        "a wrong column": split_payload(wrong_column),
        "a wrong type": split_payload(wrong_type),
        "an empty body": b"",
        "broken JSON": b"{\"dataframe_split\": ",
        "no input field": json.dumps({"rows": []}).encode(),
    }
    answers = {name: post(f"{url}/invocations", body)[0] for name, body in cases.items()}
    bad = {name: code for name, code in answers.items() if code != 400}
    detail = ("every malformed request was answered 400" if not bad else
              "; ".join(f"{name} answered {code}" for name, code in bad.items()) + " (expected 400)")
    return {"name": "malformed requests", "passed": not bad, "detail": detail, "answers": answers}


class RolloutPolicy(BaseModel):
    """``rollout:`` in the policy file: the serving endpoints that must follow @champion after a promotion."""

    model_config = ConfigDict(extra="forbid")

    endpoints: list[str] = Field(default_factory=list, description="Base URLs of serving processes (their /health).")
    deadline_seconds: float = Field(120.0, gt=0, le=3600, description="How long each may take to switch.")
    on_failure: Literal["notify", "rollback"] = Field("notify", description="What a missed deadline does.")
