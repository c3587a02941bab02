"""Apply a policy's gates to the candidate's and the champion's results: a verdict a reviewer can read.

Semantics follow MLflow's ``MetricThreshold``: a floor is ``threshold``; an improvement is
``min_absolute_change`` / ``min_relative_change`` against the baseline, in the metric's direction.
Guardrails add what MLflow lacks: no slice may get worse than the champion by more than a margin.
The statistical mode adds the other: an improvement only counts if its paired confidence interval
excludes "no improvement".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_lifecycle.core.evaluation import OVERALL, Predictions, SliceResult, paired_delta_interval

if TYPE_CHECKING:  # pragma: no cover
    from model_lifecycle.core.policy import Gate, Policy

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _better(value: float, other: float, higher: bool) -> float:
    """Signed difference where positive always means 'better'."""
    return value - other if higher else other - value


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _check(
    gate: "Gate", index: int, kind: str, key: str, cand: SliceResult, base: SliceResult | None, higher: bool
) -> dict[str, Any]:
    c = cand.metrics.get(gate.metric, {}).get("value")
    b = base.metrics.get(gate.metric, {}).get("value") if base else None
    return {
        "gate": index, "kind": kind, "metric": gate.metric, "slice": key, "n": cand.n,
        "candidate": c, "baseline": b, "delta": None if c is None or b is None else c - b,
        "higher_is_better": higher, "interval": None, "passed": False, "reason": "",
    }


def decide(
    policy: "Policy",
    candidate: dict[str, SliceResult],
    baseline: dict[str, SliceResult] | None,
    y: np.ndarray,
    cand_pred: Predictions,
    base_pred: Predictions | None,
) -> list[dict[str, Any]]:
    """Every gate check, each with values, delta, interval, pass/fail and a reason in plain words."""
    checks: list[dict[str, Any]] = []
    for index, gate in enumerate(policy.gates):
        higher = policy.higher_is_better(gate)
        word = "higher" if higher else "lower"
        if gate.floor is not None:
            row = _check(gate, index, "floor", OVERALL, candidate[OVERALL], None, higher)
            c = row["candidate"]
            row["required"] = gate.floor
            row["rule"] = f"{'≥' if higher else '≤'} {gate.floor:g}"
            row["passed"] = c is not None and (c >= gate.floor if higher else c <= gate.floor)
            row["reason"] = (
                f"{gate.metric} {_fmt(c)} {'meets' if row['passed'] else 'misses'} the floor {gate.floor:g} ({word} is better)"
            )
            checks.append(row)
        if baseline is None:
            for kind in ("improvement", "guardrail"):
                if getattr(gate, kind) is not None:
                    row = _check(gate, index, kind, OVERALL, candidate[OVERALL], None, higher)
                    row.update(passed=True, skipped=True, reason=f"no champion yet: {kind} on {gate.metric} not applied")
                    checks.append(row)
            continue
        if gate.improvement is not None:
            checks.append(_improvement(policy, gate, index, candidate, baseline, y, cand_pred, base_pred, higher))
        if gate.guardrail is not None:
            keys = [OVERALL] + ([k for k in candidate if k != OVERALL] if gate.guardrail.slices else [])
            for key in keys:
                cand, base = candidate[key], baseline.get(key)
                if cand.insufficient or base is None:
                    continue
                row = _check(gate, index, "guardrail", key, cand, base, higher)
                c, b = row["candidate"], row["baseline"]
                row["required"] = -gate.guardrail.max_drop
                row["rule"] = f"drop ≤ {gate.guardrail.max_drop:g}"
                if c is None or b is None:
                    row.update(passed=True, skipped=True, reason=f"{gate.metric} undefined in {key} (one class only)")
                else:
                    better = _better(c, b, higher)
                    row["passed"] = better >= -gate.guardrail.max_drop - 1e-12
                    where = "overall" if key == OVERALL else f"in slice {key} (n={cand.n})"
                    row["reason"] = (
                        f"{gate.metric} {where}: {_fmt(c)} vs champion {_fmt(b)}, "
                        + (f"{'within' if row['passed'] else 'worse than'} the allowed drop of {gate.guardrail.max_drop:g}")
                    )
                checks.append(row)
    return checks


def _improvement(policy, gate, index, candidate, baseline, y, cand_pred, base_pred, higher) -> dict[str, Any]:
    row = _check(gate, index, "improvement", OVERALL, candidate[OVERALL], baseline[OVERALL], higher)
    c, b = row["candidate"], row["baseline"]
    required = max(gate.improvement.absolute or 0.0, (gate.improvement.relative or 0.0) * abs(b or 0.0))
    row["required"] = required
    row["rule"] = f"gain ≥ {required:.4g}"
    if c is None or b is None:
        row["reason"] = f"{gate.metric} is undefined on the hold-out"
        return row
    better = _better(c, b, higher)
    row["passed"] = better >= required - 1e-12
    row["reason"] = (
        f"{gate.metric} {_fmt(c)} vs champion {_fmt(b)}: improvement {better:+.4f} "
        f"{'meets' if row['passed'] else 'is below'} the required {required:.4f}"
    )
    if policy.statistics.mode != "point" and base_pred is not None:
        interval = paired_delta_interval(gate.metric, y, cand_pred, base_pred, policy.task, policy)
        if interval is not None:
            low, high = interval if higher else (-interval[1], -interval[0])
            row["interval"] = [low, high]
            level = f"{policy.statistics.confidence:.0%}"
            if row["passed"] and low <= 0:
                row["passed"] = False
                row["reason"] += f", but its {level} interval [{low:+.4f}, {high:+.4f}] includes no improvement (noise)"
            elif row["passed"]:
                row["reason"] += f"; {level} interval [{low:+.4f}, {high:+.4f}] excludes no improvement"
    return row


def serialise_results(results: dict[str, SliceResult]) -> dict[str, Any]:
    return {k: {"n": r.n, "insufficient": r.insufficient, "metrics": r.metrics} for k, r in results.items()}


def build(
    *,
    model: str,
    candidate: dict[str, Any],
    baseline: dict[str, Any] | None,
    policy: "Policy",
    policy_path: str,
    holdout: dict[str, Any],
    checks: list[dict[str, Any]],
    cand_results: dict[str, SliceResult],
    base_results: dict[str, SliceResult] | None,
) -> dict[str, Any]:
    failures = [c for c in checks if not c["passed"]]
    return {
        "schema": 1,
        "model": model,
        "passed": not failures,
        "candidate": candidate,
        "baseline": baseline,
        "policy": {"path": policy_path, "task": policy.task, "statistics": policy.statistics.mode,
                   "confidence": policy.statistics.confidence, "sha256": _file_sha256(policy_path)},
        "holdout": holdout,
        "gates": checks,
        "failures": [f["reason"] for f in failures],
        "results": {
            "candidate": serialise_results(cand_results),
            "baseline": serialise_results(base_results) if base_results else None,
        },
    }


def _file_sha256(path: str) -> str | None:
    from model_lifecycle.core.lineage import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


def digest(verdict: dict[str, Any]) -> str:
    """sha256 of the canonical JSON: the evidence digest recorded in the audit record."""
    canonical = json.dumps(verdict, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def moved_slices(verdict: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    """Slices whose gated metrics moved most against the champion (failures first)."""
    rows = [c for c in verdict["gates"] if c["kind"] == "guardrail" and c["slice"] != OVERALL and c["delta"] is not None]
    rows.sort(key=lambda c: (c["passed"], -abs(c["delta"])))
    return rows[:limit]


def render_markdown(verdict: dict[str, Any]) -> str:
    """The report for a job summary or PR comment: verdict, failures, overall table, moved slices."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["f4"] = _fmt
    env.filters["signed"] = lambda v: "n/a" if v is None else f"{v:+.4f}"
    env.filters["ci"] = lambda m: "" if not m or m.get("ci_low") is None else f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
    results = verdict["results"]
    overall = []
    for metric, cand in results["candidate"][OVERALL]["metrics"].items():
        base = (results["baseline"] or {}).get(OVERALL, {}).get("metrics", {}).get(metric)
        c, b = cand.get("value"), (base or {}).get("value")
        overall.append({"metric": metric, "cand": cand, "base": base,
                        "delta": None if c is None or b is None else c - b})
    insufficient = sorted(k for k, r in results["candidate"].items() if r["insufficient"])
    return env.get_template("report.md.j2").render(
        v=verdict, overall=overall, moved=moved_slices(verdict), insufficient=insufficient,
        n_overall=results["candidate"][OVERALL]["n"],
    )
