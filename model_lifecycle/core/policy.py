"""The promotion policy: one YAML file per model, validated with messages that name field and line.

A policy declares the task, the hold-out data, the slices, and the gates a candidate must pass:
floors, improvement over the champion, guardrails (no slice may get worse by more than a margin),
an optional statistical mode, and model checks. See ``model-policy.example.yml`` for every field.

Each rule of a gate is a field of ``Gate`` named after its kind in ``rules.RULES``; a new rule kind
is one settings model (or plain type) here, as a ``Gate`` field defaulting to None, plus one
function registered in that table (see ``model_lifecycle/core/rules.py``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from model_lifecycle.core import rules, yamlcheck
from model_lifecycle.core.monitoring.policy import MonitoringPolicy
from model_lifecycle.core.staging import RolloutPolicy, StagingPolicy
from model_lifecycle.errors import BadInput

TASKS = ("binary", "multiclass", "regression")
TASK_NAMES = {"binary": "binary classifier", "multiclass": "multiclass classifier", "regression": "regressor"}

# metric -> higher is better; the same direction rules MLflow's MetricThreshold uses.
METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True, "accuracy": True, "f1": True, "precision": True, "recall": True,
        "log_loss": False, "brier": False,
    },
    "multiclass": {"accuracy": True, "f1_macro": True, "f1_weighted": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "mse": False, "r2": True},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Holdout(_Strict):
    path: str = Field(description="CSV or Parquet file with the features, the target and the slice columns.")
    target: str = Field(description="Name of the target column.")


class Slices(_Strict):
    columns: list[str] = Field(default_factory=list, description="Columns whose values define slices.")
    intersections: list[list[str]] = Field(default_factory=list, description="Column combinations to slice by.")
    min_size: int = Field(30, ge=1, description="Below this many rows a slice is reported as insufficient data.")

    @model_validator(mode="after")
    def _intersections_use_slice_columns(self) -> "Slices":
        for i, combo in enumerate(self.intersections):
            if len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError(f"intersections[{i}] must list two or more different columns")
        return self


class Improvement(_Strict):
    absolute: float | None = Field(None, description="Candidate must beat the champion by at least this (> 0).")
    relative: float | None = Field(None, description="...or by this fraction of the champion's value (0 < R <= 1).")

    @field_validator("absolute", "relative")
    @classmethod
    def _a_gain(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A required gain is positive (MLflow's ``min_absolute_change`` must be). Zero would only ask
        for "not worse", which is a guardrail; in the statistical modes it would silently mean "any
        gain the interval confirms". Either way the policy should say so itself."""
        if value is None:
            return value
        if value == 0:
            raise ValueError(
                "an improvement of 0 is not a requirement; to allow no drop against the champion use "
                "guardrail: {max_drop: 0}, to require some gain give a positive value (e.g. 0.001), "
                "or omit improvement"
            )
        if value < 0:
            raise ValueError(f"must be positive, got {value:g}; "
                             f"a tolerated drop is guardrail: {{max_drop: {-value:g}}}")
        if info.field_name == "relative" and value > 1:
            raise ValueError(f"is a fraction of the champion's value, at most 1, got {value:g}")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> "Improvement":
        if self.absolute is None and self.relative is None:
            raise ValueError("improvement needs 'absolute' and/or 'relative'")
        return self


class Guardrail(_Strict):
    max_drop: float = Field(0.0, ge=0, description="How much worse than the champion the metric may get.")
    slices: bool = Field(True, description="Apply in every slice with enough data, not only overall.")


class Gate(_Strict):
    metric: str
    floor: float | None = Field(None, description="The metric must reach this value (also for a first model).")
    improvement: Improvement | None = None
    guardrail: Guardrail | None = None
    higher_is_better: bool | None = Field(None, description="Override the metric's known direction.")

    def rule_kinds(self) -> list[str]:
        """The rule kinds this gate configures, in the order ``verdict.decide`` applies them."""
        return rules.kinds(self)

    @model_validator(mode="after")
    def _has_a_rule(self) -> "Gate":
        if not self.rule_kinds():
            raise ValueError(f"a gate needs at least one of {', '.join(repr(kind) for kind in rules.RULES)}")
        return self


class Statistics(_Strict):
    mode: Literal["point", "analytic", "bootstrap"] = "point"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    seed: int = 0


class Checks(_Strict):
    require_signature: bool = True
    prediction_range: tuple[float, float] | None = None
    latency_p95_ms: float | None = Field(None, gt=0)
    latency_batch_size: int = Field(1000, ge=1)
    latency_repeats: int = Field(20, ge=3, le=1000)
    max_model_size_mb: float | None = Field(None, gt=0)


class Tests(_Strict):
    command: str = "pytest"
    timeout_seconds: int = Field(900, ge=1)
    requirements: str | None = Field(None, description=(
        "A pip requirements file (relative to the repository) the tests need: installed once per job into "
        "their own virtual environment, whose bin comes first on the command's PATH."))


class Retention(_Strict):
    keep_last: int = Field(5, ge=0)
    older_than_days: float = Field(30, ge=0)
    stable_days: float | None = Field(None, ge=0, description=(
        "The previous champion is archived only once the current one has been champion this long with "
        "every monitored window healthy (unset: the previous champion is always kept)."))
    min_windows: int = Field(1, ge=0, description="...and at least this many healthy windows in that time.")


class Policy(_Strict):
    version: Literal[1] = 1
    task: Literal["binary", "multiclass", "regression"]
    holdout: Holdout
    slices: Slices = Field(default_factory=Slices)
    gates: list[Gate] = Field(min_length=1)
    statistics: Statistics = Field(default_factory=Statistics)
    checks: Checks = Field(default_factory=Checks)
    tests: Tests = Field(default_factory=Tests)
    retention: Retention = Field(default_factory=Retention)
    staging: StagingPolicy = Field(default_factory=StagingPolicy)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    engine: Literal["local", "spark"] = Field("local", description=(
        "Where the hold-out is evaluated: `local` (pyarrow batches in this process) or `spark` (mlflow.pyfunc."
        "spark_udf and Spark aggregations; needs the `spark` extra). --engine overrides it."))

    def higher_is_better(self, gate: Gate) -> bool:
        if gate.higher_is_better is not None:
            return gate.higher_is_better
        return METRICS[self.task][gate.metric]

    def metric_names(self) -> list[str]:
        """Every metric of the task is computed; the gates decide which ones count."""
        return list(METRICS[self.task])


def parse(text: str, source: str = "policy") -> Policy:
    """Parse and validate policy YAML text; BadInput names file, line, field and the fix."""
    policy, root = yamlcheck.parse_model(text, source, Policy, what="a policy", needs="task, holdout and gates")
    for i, gate in enumerate(policy.gates):
        known = METRICS[policy.task]
        if gate.metric not in known:
            close = difflib.get_close_matches(gate.metric, list(known), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            line = yamlcheck.node_line(root, ("gates", i, "metric"))
            raise BadInput(
                f"{source}:{line}: gates[{i}].metric: {gate.metric!r} is not a metric of a "
                f"{TASK_NAMES[policy.task]}{hint}"
            )
    for i, watched in enumerate(policy.monitoring.performance):
        if watched.metric not in METRICS[policy.task]:
            line = yamlcheck.node_line(root, ("monitoring", "performance", i, "metric"))
            raise BadInput(
                f"{source}:{line}: monitoring.performance[{i}].metric: {watched.metric!r} is not a metric of a "
                f"{TASK_NAMES[policy.task]}; known: {', '.join(METRICS[policy.task])}"
            )
    for i, combo in enumerate(policy.slices.intersections):
        unknown = [c for c in combo if c not in policy.slices.columns]
        if unknown:
            line = yamlcheck.node_line(root, ("slices", "intersections", i))
            raise BadInput(
                f"{source}:{line}: slices.intersections[{i}]: {unknown[0]!r} is not in slices.columns"
            )
    return policy


def load(path: str | Path) -> Policy:
    file = Path(path)
    if not file.is_file():
        raise BadInput(f"policy file {str(file)!r} not found", hint="pass --policy PATH (default model-policy.yml)")
    policy = parse(file.read_text(encoding="utf-8"), str(file))
    holdout = Path(policy.holdout.path)
    remote = "://" in policy.holdout.path or policy.holdout.path.startswith("table:")  # a URI or a Spark table
    if not remote and not holdout.is_absolute():  # relative to the policy file, so a policy travels with its data
        object.__setattr__(policy.holdout, "path", str((file.parent / holdout).resolve()))
    return policy
