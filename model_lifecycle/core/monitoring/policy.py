"""The policy file's ``monitoring:`` section: what a production window is checked for, and what happens
on a breach. Every threshold has a warning and a breach level; a statistic without a configured
level is reported but never decides."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Levels(_Strict):
    """A value at or beyond ``warning`` makes the window a warning, at or beyond ``breach`` a breach."""

    warning: float | None = Field(None, ge=0)
    breach: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Levels":
        if self.warning is not None and self.breach is not None and self.warning > self.breach:
            raise ValueError(f"warning ({self.warning:g}) must not be above breach ({self.breach:g})")
        return self

    def level(self, value: float | None) -> str | None:
        if value is None:
            return None
        if self.breach is not None and value >= self.breach:
            return "breach"
        if self.warning is not None and value >= self.warning:
            return "warning"
        return None


class Drift(_Strict):
    """Drift of one feature (or of the predictions) against the reference profile."""

    psi: Levels = Field(default_factory=lambda: Levels(warning=0.1, breach=0.25),
                        description="Population stability index over the reference's quantile bins.")
    ks: Levels = Field(default_factory=Levels, description="Kolmogorov-Smirnov statistic D (numeric features).")
    js: Levels = Field(default_factory=Levels, description="Jensen-Shannon distance (base 2) of the binned distributions.")


class DataQuality(_Strict):
    missing_rate_increase: Levels = Field(default_factory=lambda: Levels(warning=0.05, breach=0.2),
                                          description="Missing rate of the window minus the reference's.")
    unseen_categories: Levels = Field(default_factory=lambda: Levels(warning=0.01, breach=0.1),
                                      description="Share of rows with a category the reference never had.")
    out_of_range: Levels = Field(default_factory=lambda: Levels(warning=0.01, breach=0.1),
                                 description="Share of rows outside the reference's [min, max].")
    expected_rows_per_hour: float | None = Field(None, gt=0, description="The traffic the window should have.")
    volume_tolerance: float = Field(0.5, gt=0, lt=1, description="Fraction below the expected volume that warns.")


class Performance(_Strict):
    """A live metric against the version's own evaluation on the hold-out, overall and by slice."""

    metric: str
    max_drop: float = Field(0.0, ge=0, description="How much worse than on the hold-out the metric may get.")
    slices: bool = Field(True, description="Also in every slice with at least min_slice_rows labelled rows.")


class Shadow(_Strict):
    min_agreement: float | None = Field(None, ge=0, le=1, description="Below this the window warns.")


class MonitoringPolicy(_Strict):
    min_rows: int = Field(200, ge=1, description="Below this a window is insufficient data, never a breach.")
    min_slice_rows: int = Field(50, ge=1, description="Below this a slice's live metric is not judged.")
    label_delay_hours: float = Field(0, ge=0, description="Rows younger than this are not expected to have labels yet.")
    drift: Drift = Field(default_factory=Drift)
    features: dict[str, Drift] = Field(default_factory=dict, description="Per-feature drift thresholds.")
    prediction_drift: Drift | None = Field(None, description="Thresholds for the predictions (default: drift).")
    data_quality: DataQuality = Field(default_factory=DataQuality)
    performance: list[Performance] = Field(default_factory=list)
    shadow: Shadow = Field(default_factory=Shadow)
    consecutive_breaches: int = Field(1, ge=1, description="Breached windows in a row that trigger the action.")
    action: Literal["notify", "rollback"] = "notify"
    cooldown_hours: float = Field(24, ge=0, description="No automatic rollback within this long of the last rollback.")
    experiment: str = Field("model-monitoring", min_length=1, description="MLflow experiment of the monitoring runs.")

    def drift_for(self, feature: str) -> Drift:
        return self.features.get(feature, self.drift)
