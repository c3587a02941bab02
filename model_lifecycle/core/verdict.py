"""Apply a policy's gates to the candidate's and the champion's results: a verdict a reviewer can read.

Semantics follow MLflow's ``MetricThreshold``: a floor is ``threshold``; an improvement is
``min_absolute_change`` / ``min_relative_change`` against the baseline, in the metric's direction.
Guardrails add what MLflow lacks: no slice may get worse than the champion by more than a margin.
The statistical mode adds the other: an improvement only counts if the whole paired confidence
interval of the gain lies above zero.

The rule kinds themselves live in ``model_lifecycle.core.rules`` (a table kind -> function);
``decide`` applies that table to every gate.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_lifecycle.core import rules
from model_lifecycle.core.evaluation import OVERALL, Predictions, SliceResult

if TYPE_CHECKING:  # pragma: no cover
    from model_lifecycle.core.policy import Policy

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

_fmt = rules.fmt


def decide(
    policy: "Policy",
    candidate: dict[str, SliceResult],
    baseline: dict[str, SliceResult] | None,
    y: np.ndarray,
    cand_pred: Predictions,
    base_pred: Predictions | None,
) -> list[dict[str, Any]]:
    """Every gate check, each with values, delta, interval, pass/fail and a reason in plain words.

    For each gate in policy order, the rows of each rule kind it configures, in ``rules.RULES`` order."""
    checks: list[dict[str, Any]] = []
    for index, gate in enumerate(policy.gates):
        ctx = rules.Context(policy, gate, index, candidate, baseline, y, cand_pred, base_pred,
                            policy.higher_is_better(gate))
        for kind in rules.kinds(gate):
            checks.extend(rules.apply(kind, ctx))
    return checks


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
    env.filters["pair"] = lambda i: "" if not i else f"[{i[0]:+.4f}, {i[1]:+.4f}]"
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
        intervals=any(g.get("interval") for g in verdict["gates"]),  # the statistical modes' paired intervals
    )
