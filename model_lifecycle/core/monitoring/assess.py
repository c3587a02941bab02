"""One production window against the monitored version's reference profile.

Checks, in order: the window's schema against the version's inputs (missing columns are bad input),
then, with at least ``min_rows`` rows: volume, data quality and drift per feature, drift of the
predictions, live performance overall and by slice (when labels are joined; through the gate's
own evaluation code), and shadow agreement (when the window holds shadow predictions). Each finding
names its check, subject (feature or slice), statistic, value and threshold. The window is a
``breach`` when any finding is, else a ``warning`` when any is, else ``healthy``; a window with fewer
rows than ``min_rows`` is ``insufficient_data`` and never a breach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from model_lifecycle.core.monitoring import drift
from model_lifecycle.core.monitoring import window as windows
from model_lifecycle.core.monitoring.policy import Drift, Levels
from model_lifecycle.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from model_lifecycle.core.policy import Policy

HEALTHY, WARNING, BREACH, INSUFFICIENT = "healthy", "warning", "breach", "insufficient_data"
STATUSES = (HEALTHY, WARNING, BREACH, INSUFFICIENT)


@dataclass
class Assessment:
    status: str
    rows: int
    findings: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # feature -> statistics
    prediction: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None  # slice -> metrics (the gate's serialised results)
    labels: dict[str, Any] | None = None  # joined, unmatched, coverage
    shadow: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics of the window: ``rows``, ``drift/<feature>/psi``, live metrics by slice, ..."""
        out: dict[str, float] = {"rows": float(self.rows)}
        for name, stats in {**self.features, **({"prediction": self.prediction} if self.prediction else {})}.items():
            for key in ("psi", "ks", "ks_p_value", "js", "chi2_p_value", "missing_rate", "out_of_range", "unseen"):
                value = stats.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    out[f"drift/{_safe(name)}/{key}"] = float(value)
        for slice_key, result in (self.performance or {}).items():
            suffix = "" if slice_key == "overall" else f"/{slice_key}"
            for metric, stats in result.get("metrics", {}).items():
                if stats.get("value") is not None and math.isfinite(stats["value"]):
                    out[f"live/{metric}{suffix}"] = float(stats["value"])
        if self.shadow and self.shadow.get("agreement") is not None:
            out["shadow/agreement"] = float(self.shadow["agreement"])
        if self.labels:
            out["labels/joined"] = float(self.labels["joined"])
        return out


def _safe(name: str) -> str:
    from model_lifecycle.core.evaluation import _UNSAFE

    return _UNSAFE.sub("_", name)


def _finding(check: str, subject: str, statistic: str, value: float, levels: Levels | None, level: str,
             detail: str | None = None, **extra: Any) -> dict[str, Any]:
    threshold = None
    if levels is not None:
        threshold = levels.breach if level == BREACH else levels.warning
    return {"check": check, "subject": subject, "statistic": statistic, "value": _round(value),
            "threshold": threshold, "level": level, **({"detail": detail} if detail else {}), **extra}


def _round(value: Any) -> Any:
    return round(float(value), 6) if isinstance(value, (int, float, np.floating)) and math.isfinite(value) else value


def _judge(findings: list[dict[str, Any]], check: str, subject: str, statistic: str, value: float | None,
           levels: Levels, **extra: Any) -> None:
    level = levels.level(value) if value is not None and math.isfinite(value) else None
    if level:
        findings.append(_finding(check, subject, statistic, value, levels, level, **extra))


def required_columns(profile: dict[str, Any]) -> list[str]:
    return list(profile["features"])


class WindowReader(Protocol):
    """What judging a window asks of an engine: counts and aggregates, never the rows themselves.
    ``core.monitoring.local.LocalReader`` (pyarrow on this machine) and
    ``core.engines.spark_window.SparkReader`` (where the window lives) answer alike."""

    engine: str
    source: str
    columns: list[str]
    filtered: bool  # --since/--until or the version select rows

    def count(self) -> int: ...
    def time_span(self) -> tuple[datetime | None, datetime | None]: ...
    def floating(self, column: str) -> bool: ...
    def column_counts(self, summaries: dict[str, dict[str, Any]], progress: Any = None) -> dict[str, Any]: ...
    def labelled(self, labels: Any, target: str, delay_hours: float, now: datetime | None, policy: "Policy",
                 profile: dict[str, Any], live_policy: "Policy") -> tuple[dict[str, Any], dict[str, Any] | None]: ...
    def shadow(self, slice_columns: list[str]) -> dict[str, Any]: ...


def reader_of(window: Any) -> WindowReader:
    """An opened local window becomes the local engine's reader; a reader stays itself."""
    from model_lifecycle.core.monitoring.local import LocalReader

    return LocalReader(window) if isinstance(window, windows.Window) else window


def assess(
    policy: "Policy", profile: dict[str, Any], window: Any, *, labels: Any = None,
    label_column: str | None = None, now: datetime | None = None, progress: Any = None,
) -> Assessment:
    settings = policy.monitoring
    reader = reader_of(window)
    missing = [c for c in required_columns(profile) if c not in reader.columns]
    if missing:
        raise BadInput(
            f"window {reader.source!r} has no column {missing[0]!r} of the model's inputs"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="the window must hold the inputs the version was evaluated with (its signature's columns)",
        )
    rows = reader.count()
    if rows == 0:
        raise BadInput(f"window {reader.source!r} has no rows"
                       + (" in the given --since/--until range for this version" if reader.filtered else ""))
    result = Assessment(status=HEALTHY, rows=rows)
    target = label_column or policy.holdout.target
    live_policy = policy.model_copy(update={"slices": policy.slices.model_copy(
        update={"min_size": settings.min_slice_rows})})
    live = reader.labelled(labels, target, settings.label_delay_hours, now, policy, profile, live_policy) \
        if labels is not None else None
    if rows < settings.min_rows:
        result.status = INSUFFICIENT
        result.notes.append(f"{rows} rows in the window, fewer than monitoring.min_rows ({settings.min_rows}): "
                            "insufficient data, nothing is judged")
        return result
    findings = result.findings
    _volume(result, reader, settings)
    summaries = dict(profile["features"])
    prediction = None
    if profile.get("prediction") and windows.PREDICTION in reader.columns:
        prediction = profile["prediction"]
        if prediction["kind"] == "categorical" and profile.get("score") and reader.floating(windows.PREDICTION):
            prediction = profile["score"]  # a binary classifier that serves probabilities
    counted = reader.column_counts({**summaries, **({windows.PREDICTION: prediction} if prediction else {})},
                                   progress)
    for name, summary in summaries.items():
        result.features[name] = _feature(findings, name, summary, counted[name], settings.drift_for(name), settings,
                                         "feature")
    if prediction:
        result.prediction = _feature(findings, "prediction", prediction, counted[windows.PREDICTION],
                                     settings.prediction_drift or settings.drift, settings, "prediction")
    if live is not None:
        result.labels, results = live
        if results is not None:
            result.performance = results
            _performance(findings, policy, profile, results)
    if windows.SHADOW in reader.columns:
        result.shadow = _shadow(findings, policy, reader.shadow(policy.slices.columns))
    levels = {f["level"] for f in findings}
    result.status = BREACH if BREACH in levels else WARNING if WARNING in levels else HEALTHY
    return result


def _volume(result: Assessment, reader: WindowReader, settings: Any) -> None:
    expected = settings.data_quality.expected_rows_per_hour
    if expected is None:
        return
    start, end = reader.time_span()
    if start is None or end is None or end <= start:
        result.notes.append("volume not checked: the window has no time span (pass --since and --until)")
        return
    hours = (end - start).total_seconds() / 3600
    rate = result.rows / hours
    floor = expected * (1 - settings.data_quality.volume_tolerance)
    if rate < floor:
        result.findings.append(_finding("volume", "window", "rows_per_hour", rate, None, WARNING,
                                        f"{rate:.1f} rows per hour, expected {expected:g} (warns below {floor:g})",
                                        threshold_value=floor))


def _feature(findings: list[dict[str, Any]], name: str, summary: dict[str, Any], counts: Any,
             thresholds: Drift, settings: Any, check: str) -> dict[str, Any]:
    """Missing rate, range or unseen categories, and drift of one column, from its counts."""
    quality = settings.data_quality
    stats: dict[str, Any] = {"kind": summary["kind"]}
    if summary["kind"] == "numeric":
        if isinstance(counts, drift.CategoryCounts) or counts.text:
            findings.append(_finding("schema", name, "type", float("nan"), None, BREACH,
                                     f"{name!r} holds text, the reference holds numbers"))
            return stats
        n = counts.present
        stats["missing_rate"] = counts.missing / counts.rows if counts.rows else 0.0
        if summary["min"] is not None and n:
            stats["out_of_range"] = drift.out_of_range(summary, counts)
            _judge(findings, "data_quality", name, "out_of_range", stats["out_of_range"], quality.out_of_range,
                   detail=f"share of values outside the reference's [{summary['min']:g}, {summary['max']:g}]")
        if n and summary["edges"] is not None and summary["proportions"]:
            shares = drift.numeric_shares(summary, counts)
            stats["psi"] = drift.psi(np.asarray(summary["proportions"]), shares)
            stats["js"] = drift.js(np.asarray(summary["proportions"]), shares)
            stats["ks"], stats["ks_p_value"] = drift.ks_counts(summary, counts)
            stats["window_mean"] = counts.total / n
            stats["reference_mean"] = summary.get("mean")
    else:
        stats["missing_rate"] = counts.missing / counts.rows if counts.rows else 0.0
        if counts.present:
            reference, window_counts, shares, unseen, unseen_rows = drift.category_shares(
                summary, counts.by_text(), counts.folded)
            stats["unseen"] = float(unseen_rows / counts.present)
            if unseen:
                stats["unseen_values"] = sorted(unseen, key=lambda k: -unseen[k])[:10]
            _judge(findings, "data_quality", name, "unseen_categories", stats["unseen"], quality.unseen_categories,
                   detail="share of rows with a category the reference never had: "
                          + ", ".join(map(repr, stats.get("unseen_values", [])[:5])))
            stats["psi"] = drift.psi(reference, shares)
            stats["js"] = drift.js(reference, shares)
            stats["chi2"], stats["chi2_p_value"] = drift.chi_square(reference, window_counts)
    increase = stats["missing_rate"] - summary["missing_rate"]
    stats["missing_rate_increase"] = increase
    _judge(findings, "data_quality", name, "missing_rate_increase", increase, quality.missing_rate_increase,
           detail=f"missing rate {stats['missing_rate']:.3f}, reference {summary['missing_rate']:.3f}")
    described = _describe_drift(stats)
    for statistic in ("psi", "ks", "js"):
        _judge(findings, f"{check}_drift", name, statistic, stats.get(statistic), getattr(thresholds, statistic),
               detail=described)
    return {k: _round(v) if isinstance(v, float) else v for k, v in stats.items()}


def _describe_drift(stats: dict[str, Any]) -> str:
    """Every drift statistic of one column in a line, so a finding on one shows the others."""
    parts = []
    if stats.get("psi") is not None:
        parts.append(f"PSI {stats['psi']:.3f}")
    if stats.get("ks") is not None and math.isfinite(stats["ks"]):
        parts.append(f"KS D {stats['ks']:.3f} (p {stats['ks_p_value']:.2g})")
    if stats.get("chi2") is not None and math.isfinite(stats["chi2"]):
        parts.append(f"chi-square {stats['chi2']:.1f} (p {stats['chi2_p_value']:.2g})")
    if stats.get("js") is not None:
        parts.append(f"JS {stats['js']:.3f}")
    if stats.get("reference_mean") is not None and stats.get("window_mean") is not None:
        parts.append(f"mean {stats['reference_mean']:.4g} -> {stats['window_mean']:.4g}")
    return ", ".join(parts)


def _performance(findings: list[dict[str, Any]], policy: "Policy", profile: dict[str, Any],
                 results: dict[str, Any]) -> None:
    """Findings where a live metric fell below the hold-out's by more than the policy allows: a
    breach only when the whole interval is past the allowed value, else a warning."""
    from model_lifecycle.core import evaluation

    settings = policy.monitoring
    reference = profile.get("results") or {}
    for watched in settings.performance:
        higher = _higher(policy, watched.metric)
        for key, live in results.items():
            if key != evaluation.OVERALL and not watched.slices:
                continue
            ref = (reference.get(key) or {}).get("metrics", {}).get(watched.metric) or {}
            stats = live.get("metrics", {}).get(watched.metric) or {}
            if live.get("insufficient") or ref.get("value") is None or stats.get("value") is None:
                continue
            floor = ref["value"] - watched.max_drop if higher else ref["value"] + watched.max_drop
            value, low, high = stats["value"], stats.get("ci_low"), stats.get("ci_high")
            worse = value < floor if higher else value > floor
            if not worse:
                continue
            surely = (high is not None and high < floor) if higher else (low is not None and low > floor)
            findings.append({
                "check": "performance", "subject": key, "statistic": watched.metric, "value": _round(value),
                "threshold": _round(floor), "level": BREACH if surely else WARNING,
                "interval": [_round(low), _round(high)], "reference": _round(ref["value"]), "n": live.get("n"),
                "detail": (f"{watched.metric} {value:.4f} [{low:.4f}, {high:.4f}] on {live.get('n')} labelled rows, "
                           f"reference {ref['value']:.4f}, allowed {'down to' if higher else 'up to'} {floor:.4f}"
                           if low is not None and high is not None else
                           f"{watched.metric} {value:.4f} on {live.get('n')} rows, allowed {floor:.4f}"),
            })


def _higher(policy: "Policy", metric: str) -> bool:
    from model_lifecycle.core.policy import METRICS

    return METRICS[policy.task][metric]


def _shadow(findings: list[dict[str, Any]], policy: "Policy", counts: dict[str, Any]) -> dict[str, Any]:
    """Agreement of the shadow challenger with the champion, overall and by slice (slices with at
    least ``monitoring.min_slice_rows`` shadowed rows)."""
    if not counts["rows"]:
        return {"rows": 0, "agreement": None}
    by_slice = {key: round(agree / n, 6) for key, (n, agree) in counts["by_slice"].items()
                if n >= policy.monitoring.min_slice_rows}
    result = {"rows": counts["rows"], "agreement": round(counts["agree"] / counts["rows"], 6), "by_slice": by_slice}
    floor = policy.monitoring.shadow.min_agreement
    if floor is not None:
        for key, value in {"overall": result["agreement"], **by_slice}.items():
            if value < floor:
                findings.append({"check": "shadow", "subject": key, "statistic": "agreement", "value": value,
                                 "threshold": floor, "level": WARNING,
                                 "detail": f"the challenger agrees with the champion on {value:.1%} of rows"})
    return result
