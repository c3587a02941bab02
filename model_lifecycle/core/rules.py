"""The rule kinds of a gate, as a table: kind -> function that turns one gate into check rows.

A gate in the policy names a metric and one or more rules (``floor``, ``improvement``,
``guardrail``). Each rule kind is a function registered in ``RULES`` under the name of the
gate's field that configures it. ``verdict.decide`` loops over the gates and, for each gate, over
this table in its order, so the rows of a gate come out floor, then improvement, then guardrail.

A rule function takes a ``Context`` (the policy, the gate and its index, the candidate's and the
baseline's results by slice, ``y``, both models' predictions and the metric's direction) and
returns a list of check rows: dicts with ``gate, kind, metric, slice, n, candidate, baseline,
delta, higher_is_better, interval, passed, reason`` (start from ``Context.row``), plus
``required`` and ``rule`` when the rule has a threshold and ``skipped: True`` when a check
could not be applied. Reasons are plain sentences a reviewer reads in the report.

Rules that compare with the champion declare ``needs_baseline=True``. When there is no champion
yet (a first model) they are not called: ``apply`` writes one skipped, passed row for them, so
no rule handles that case itself.

Adding a rule kind takes two things:

1. A pydantic model (or a plain type) for its settings in ``model_lifecycle/core/policy.py`` and
   a field of that name on ``Gate``, defaulting to ``None``, e.g.
   ``ceiling: float | None = Field(None, description=...)``. That field is the YAML key users
   write under a gate; a gate with no rule at all is still rejected, with the kinds listed from
   this table.
2. One function here, registered under the same name::

       @rule("ceiling")
       def ceiling(ctx: Context) -> list[dict[str, Any]]:
           row = ctx.row("ceiling")
           ...
           return [row]

Its position in ``RULES`` (definition order) is the position of its rows within a gate.
Format numbers with ``fmt`` and any value that may be a numpy scalar (class labels, counts) with
``plain`` first, so reports read ``0`` and never ``np.int64(0)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from model_lifecycle.core.evaluation import OVERALL, Predictions, SliceResult, paired_delta_interval

if TYPE_CHECKING:  # pragma: no cover
    from model_lifecycle.core.policy import Gate, Policy

Row = dict[str, Any]
RuleFn = Callable[["Context"], list[Row]]

# Comparisons exactly at a threshold pass; this absorbs float noise such as 0.8 - 0.7 != 0.1.
TOLERANCE = 1e-12


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(0)`` -> ``0``); anything else as is."""
    return value.item() if isinstance(value, np.generic) else value


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{plain(value):.4f}"


def better(value: float, other: float, higher: bool) -> float:
    """Signed difference where positive always means 'better'."""
    return value - other if higher else other - value


@dataclass(frozen=True)
class Context:
    """What a rule sees of one gate: the policy, the gate, both models' results and predictions."""

    policy: "Policy"
    gate: "Gate"
    index: int
    candidate: dict[str, SliceResult]
    baseline: dict[str, SliceResult] | None
    y: np.ndarray
    cand_pred: Predictions
    base_pred: Predictions | None
    higher_is_better: bool

    @property
    def metric(self) -> str:
        return self.gate.metric

    @property
    def word(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def settings(self, kind: str) -> Any:
        """The gate's configuration of one rule kind (its field on ``Gate``)."""
        return getattr(self.gate, kind)

    def value(self, result: SliceResult | None) -> float | None:
        if result is None:
            return None
        return plain(result.metrics.get(self.metric, {}).get("value"))

    def row(self, kind: str, key: str = OVERALL, *, with_baseline: bool = True) -> Row:
        """A check row for slice ``key``, not yet passed, with both values and their delta."""
        cand = self.candidate[key]
        base = self.baseline.get(key) if with_baseline and self.baseline is not None else None
        c, b = self.value(cand), self.value(base)
        return {
            "gate": self.index, "kind": kind, "metric": self.metric, "slice": plain(key), "n": plain(cand.n),
            "candidate": c, "baseline": b, "delta": None if c is None or b is None else c - b,
            "higher_is_better": self.higher_is_better, "interval": None, "passed": False, "reason": "",
        }


RULES: dict[str, RuleFn] = {}


def rule(kind: str, *, needs_baseline: bool = False) -> Callable[[RuleFn], RuleFn]:
    """Register a rule function under the name of its ``Gate`` field."""

    def register(fn: RuleFn) -> RuleFn:
        fn.needs_baseline = needs_baseline  # type: ignore[attr-defined]
        RULES[kind] = fn
        return fn

    return register


def needs_baseline(fn: RuleFn) -> bool:
    return bool(getattr(fn, "needs_baseline", False))


def kinds(gate: "Gate") -> list[str]:
    """The rule kinds a gate configures, in table order."""
    return [kind for kind in RULES if getattr(gate, kind, None) is not None]


def apply(kind: str, ctx: Context) -> list[Row]:
    """The rows of one rule of one gate; a rule that needs a champion is skipped without one."""
    fn = RULES[kind]
    if needs_baseline(fn) and ctx.baseline is None:
        row = ctx.row(kind, with_baseline=False)
        row.update(passed=True, skipped=True, reason=f"no champion yet: {kind} on {ctx.metric} not applied")
        return [row]
    return fn(ctx)


# --- the rule kinds --------------------------------------------------------------------------------


@rule("floor")
def floor(ctx: Context) -> list[Row]:
    """MLflow's ``threshold``: the candidate's overall value must reach the floor (also for a first model)."""
    required = ctx.settings("floor")
    higher = ctx.higher_is_better
    row = ctx.row("floor", with_baseline=False)
    c = row["candidate"]
    row["required"] = required
    row["rule"] = f"{'≥' if higher else '≤'} {required:g}"
    row["passed"] = c is not None and (c >= required if higher else c <= required)
    row["reason"] = (
        f"{ctx.metric} {fmt(c)} {'meets' if row['passed'] else 'misses'} the floor {required:g} ({ctx.word} is better)"
    )
    return [row]


@rule("improvement", needs_baseline=True)
def improvement(ctx: Context) -> list[Row]:
    """MLflow's ``min_absolute_change`` / ``min_relative_change`` against the champion, overall.

    In the statistical modes a point pass also needs the paired interval of the gain to lie
    entirely above zero; otherwise the gain may be noise and the check fails."""
    settings, policy, higher = ctx.settings("improvement"), ctx.policy, ctx.higher_is_better
    row = ctx.row("improvement")
    c, b = row["candidate"], row["baseline"]
    required = max(settings.absolute or 0.0, (settings.relative or 0.0) * abs(b or 0.0))
    row["required"] = required
    row["rule"] = f"gain ≥ {required:.4g}"
    if c is None or b is None:
        row["reason"] = f"{ctx.metric} is undefined on the hold-out"
        return [row]
    gain = better(c, b, higher)
    row["passed"] = gain >= required - TOLERANCE
    row["reason"] = (
        f"{ctx.metric} {fmt(c)} vs champion {fmt(b)}: improvement {gain:+.4f} "
        f"{'meets' if row['passed'] else 'is below'} the required {required:.4f}"
    )
    if policy.statistics.mode != "point" and ctx.base_pred is not None:
        interval = paired_delta_interval(ctx.metric, ctx.y, ctx.cand_pred, ctx.base_pred, policy.task, policy)
        if interval is not None:
            low, high = (float(interval[0]), float(interval[1])) if higher else (-float(interval[1]), -float(interval[0]))
            row["interval"] = [low, high]
            level = f"{policy.statistics.confidence:.0%}"
            if row["passed"] and low <= 0:
                row["passed"] = False
                row["reason"] += (
                    f", but its {level} interval [{low:+.4f}, {high:+.4f}] includes zero: the gain may be noise"
                )
            elif row["passed"]:
                row["reason"] += f"; the whole {level} interval [{low:+.4f}, {high:+.4f}] is an improvement"
    return [row]


@rule("guardrail", needs_baseline=True)
def guardrail(ctx: Context) -> list[Row]:
    """No slice may get worse than the champion by more than ``max_drop``: overall, then every slice
    with enough data that the champion was also evaluated on."""
    settings, higher = ctx.settings("guardrail"), ctx.higher_is_better
    assert ctx.baseline is not None  # needs_baseline
    keys = [OVERALL] + ([k for k in ctx.candidate if k != OVERALL] if settings.slices else [])
    rows = []
    for key in keys:
        if ctx.candidate[key].insufficient or ctx.baseline.get(key) is None:
            continue
        row = ctx.row("guardrail", key)
        c, b = row["candidate"], row["baseline"]
        row["required"] = -settings.max_drop
        row["rule"] = f"drop ≤ {settings.max_drop:g}"
        if c is None or b is None:
            row.update(passed=True, skipped=True, reason=f"{ctx.metric} undefined in {plain(key)} (one class only)")
        else:
            row["passed"] = better(c, b, higher) >= -settings.max_drop - TOLERANCE
            where = "overall" if key == OVERALL else f"in slice {plain(key)} (n={row['n']})"
            row["reason"] = (
                f"{ctx.metric} {where}: {fmt(c)} vs champion {fmt(b)}, "
                f"{'within' if row['passed'] else 'worse than'} the allowed drop of {settings.max_drop:g}"
            )
        rows.append(row)
    return rows
