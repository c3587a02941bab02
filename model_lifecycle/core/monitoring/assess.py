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
from typing import TYPE_CHECKING, Any

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


def assess(
    policy: "Policy", profile: dict[str, Any], window: windows.Window, *, labels: Any = None,
    label_column: str | None = None, now: datetime | None = None, progress: Any = None,
) -> Assessment:
    settings = policy.monitoring
    missing = [c for c in required_columns(profile) if c not in window.columns]
    if missing:
        raise BadInput(
            f"window {window.source!r} has no column {missing[0]!r} of the model's inputs"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="the window must hold the inputs the version was evaluated with (its signature's columns)",
        )
    rows = window.count()
    if rows == 0:
        raise BadInput(f"window {window.source!r} has no rows"
                       + (" in the given --since/--until range for this version" if window.filter is not None else ""))
    result = Assessment(status=HEALTHY, rows=rows)
    if labels is not None:
        joined = _join_labels(window, labels, label_column or policy.holdout.target, settings.label_delay_hours, now,
                              policy.slices.columns)
    else:
        joined = None
    if rows < settings.min_rows:
        result.status = INSUFFICIENT
        result.notes.append(f"{rows} rows in the window, fewer than monitoring.min_rows ({settings.min_rows}): "
                            "insufficient data, nothing is judged")
        return result
    findings = result.findings
    _volume(result, window, settings)
    for done, (name, summary) in enumerate(profile["features"].items(), start=1):
        values = windows.as_numpy(window.read([name]).column(0))
        result.features[name] = _feature(findings, name, summary, values, settings.drift_for(name), settings, "feature")
        del values
        if progress is not None:
            progress(done, len(profile["features"]), "window columns judged")
    if profile.get("prediction") and windows.PREDICTION in window.columns:
        values = windows.as_numpy(window.read([windows.PREDICTION]).column(0))
        summary = profile["prediction"]
        if summary["kind"] == "categorical" and values.dtype.kind == "f" and profile.get("score"):
            summary = profile["score"]  # a binary classifier that serves probabilities
        result.prediction = _feature(findings, "prediction", summary, values,
                                     settings.prediction_drift or settings.drift, settings, "prediction")
    if joined is not None:
        result.labels = joined["info"]
        if joined["frame"] is not None:
            result.performance = _performance(findings, policy, profile, joined["frame"],
                                              label_column or policy.holdout.target)
    if windows.SHADOW in window.columns:
        result.shadow = _shadow(findings, policy, window, labels)
    levels = {f["level"] for f in findings}
    result.status = BREACH if BREACH in levels else WARNING if WARNING in levels else HEALTHY
    return result


def _volume(result: Assessment, window: windows.Window, settings: Any) -> None:
    expected = settings.data_quality.expected_rows_per_hour
    if expected is None:
        return
    start, end = windows.time_span(window)
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


def _feature(findings: list[dict[str, Any]], name: str, summary: dict[str, Any], values: np.ndarray,
             thresholds: Drift, settings: Any, check: str) -> dict[str, Any]:
    """Missing rate, range or unseen categories, and drift of one column."""
    quality = settings.data_quality
    stats: dict[str, Any] = {"kind": summary["kind"]}
    if summary["kind"] == "numeric":
        try:
            numbers = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            findings.append(_finding("schema", name, "type", float("nan"), None, BREACH,
                                     f"{name!r} holds text, the reference holds numbers"))
            return stats
        missing = ~np.isfinite(numbers)
        present = numbers[~missing]
        stats["missing_rate"] = float(missing.mean())
        if summary["min"] is not None and len(present):
            stats["out_of_range"] = float(((present < summary["min"]) | (present > summary["max"])).mean())
            _judge(findings, "data_quality", name, "out_of_range", stats["out_of_range"], quality.out_of_range,
                   detail=f"share of values outside the reference's [{summary['min']:g}, {summary['max']:g}]")
        if len(present) and summary["edges"] is not None and summary["proportions"]:
            shares = drift.numeric_bins(summary, present)
            stats["psi"] = drift.psi(np.asarray(summary["proportions"]), shares)
            stats["js"] = drift.js(np.asarray(summary["proportions"]), shares)
            stats["ks"], stats["ks_p_value"] = drift.ks(summary, present)
            stats["window_mean"] = float(present.mean())
            stats["reference_mean"] = summary.get("mean")
    else:
        import pandas as pd

        series = pd.Series(values, dtype=object)
        missing_mask = series.isna().to_numpy()
        stats["missing_rate"] = float(missing_mask.mean())
        present = series[~missing_mask]
        if len(present):
            reference, counts, shares, unseen = drift.categorical_shares(summary, present)
            stats["unseen"] = float(sum(unseen.values()) / len(present))
            if unseen:
                stats["unseen_values"] = sorted(unseen, key=lambda k: -unseen[k])[:10]
            _judge(findings, "data_quality", name, "unseen_categories", stats["unseen"], quality.unseen_categories,
                   detail="share of rows with a category the reference never had: "
                          + ", ".join(map(repr, stats.get("unseen_values", [])[:5])))
            stats["psi"] = drift.psi(reference, shares)
            stats["js"] = drift.js(reference, shares)
            stats["chi2"], stats["chi2_p_value"] = drift.chi_square(reference, counts)
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


def _join_labels(window: windows.Window, labels: Any, target: str, delay_hours: float, now: datetime | None,
                 slice_columns: list[str]) -> dict[str, Any]:
    """The window's predictions with their labels (and slice columns from either side), by request id.

    Joined in Arrow (no Python object per row), reading only the keys, the prediction, the time and
    the slice columns. Labels whose request id the source never saw at all are bad input when none
    match (the wrong file); some unmatched labels are normal (capture sampling, dropped records,
    labels of other windows)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = labels.column_names
    if windows.REQUEST_ID not in columns:
        raise BadInput(f"labels have no {windows.REQUEST_ID!r} column", hint="labels are joined by request id")
    if target not in columns:
        raise BadInput(f"labels have no {target!r} column (the policy's holdout.target)",
                       hint="name it with --label-column")
    if windows.REQUEST_ID not in window.columns:
        raise BadInput(f"window {window.source!r} has no {windows.REQUEST_ID!r} column to join labels on")
    if labels.num_rows == 0:
        return {"info": {"labels": 0, "joined": 0, "unmatched": 0}, "frame": None}
    keys = [windows.REQUEST_ID] + ([windows.RECORD] if windows.RECORD in columns
                                   and windows.RECORD in window.columns else [])
    label_ids = labels.column(windows.REQUEST_ID).cast(pa.string())
    source_ids = window.read_all([windows.REQUEST_ID]).column(0).cast(pa.string())
    matched = pc.is_in(label_ids, value_set=pc.unique(source_ids))
    del source_ids
    if not pc.any(matched).as_py():
        raise BadInput(f"none of the {labels.num_rows} labels matches a request id of window {window.source!r} "
                       f"(first: {label_ids[0].as_py()!r})",
                       hint="labels are joined on the request_id that serve recorded (X-Request-Id)")
    from_labels = [c for c in slice_columns if c in columns]
    from_window = [c for c in slice_columns if c in window.columns and c not in from_labels]
    wanted = [c for c in [*keys, windows.TIMESTAMP, windows.PREDICTION] if c in window.columns] + from_window
    table = _keys_typed(window.read(wanted), keys)
    right_table = _keys_typed(labels.select([*keys, target, *from_labels]), keys)
    if target in table.column_names:
        table = table.drop_columns([target])
    joined = table.join(right_table, keys=keys, join_type="inner")
    eligible = table.num_rows
    if delay_hours and windows.TIMESTAMP in table.column_names:
        cutoff = pd.Timestamp(now or datetime.now().astimezone()) - pd.Timedelta(hours=delay_hours)
        stamps = table.column(windows.TIMESTAMP).cast(pa.timestamp("us", tz="UTC"))
        eligible = int(pc.sum(pc.less_equal(stamps, pa.scalar(cutoff.to_pydatetime(),
                                                              type=pa.timestamp("us", tz="UTC")))).as_py() or 0)
    info = {"labels": int(labels.num_rows), "joined": int(joined.num_rows),
            "unmatched": int(labels.num_rows - pc.sum(matched).as_py()),
            "coverage": round(joined.num_rows / eligible, 4) if eligible else None}
    if joined.num_rows:  # slice keys as categories: no Python string per row
        kept = joined.select([windows.PREDICTION, target, *from_labels, *from_window])
        for column in [*from_labels, *from_window]:
            index = kept.schema.get_field_index(column)
            kept = kept.set_column(index, column, pc.dictionary_encode(kept.column(column).cast(pa.string())))
        frame = kept.to_pandas()
    else:
        frame = None
    return {"info": info, "frame": frame}


def _keys_typed(table: Any, keys: list[str]) -> Any:
    """The join keys as one type on both sides: request ids as text, record numbers as int64."""
    import pyarrow as pa

    for key, kind in zip(keys, (pa.string(), pa.int64())):
        index = table.schema.get_field_index(key)
        table = table.set_column(index, key, table.column(key).cast(kind))
    return table


def live_predictions(values: np.ndarray, task: str, classes: list[Any] | None) -> Any:
    """The served predictions as the gate's ``Predictions``: labels for classifiers (a binary
    classifier that serves probabilities gives scores, thresholded at 0.5 for labels), values for regressors."""
    from model_lifecycle.core.evaluation import Predictions

    if task == "regression":
        return Predictions(values=np.asarray(values, dtype=float))
    array = np.asarray(values)
    if task == "binary" and array.dtype.kind == "f" and classes and len(classes) == 2 \
            and not np.isin(array, [0.0, 1.0]).all():
        return Predictions(labels=np.where(array >= 0.5, classes[1], classes[0]), scores=array, classes=classes)
    if classes:  # labels as the model's classes (capture may hold 1.0 for 1)
        kinds = {type(c) for c in classes}
        if kinds <= {int} and array.dtype.kind == "f":
            array = array.astype(int)
    return Predictions(labels=array, classes=classes if task == "binary" else None)


def _performance(findings: list[dict[str, Any]], policy: "Policy", profile: dict[str, Any], frame: Any,
                 target: str) -> dict[str, Any]:
    from model_lifecycle.core import evaluation
    from model_lifecycle.core.verdict import serialise_results

    settings = policy.monitoring
    present = [c for c in policy.slices.columns if c in frame.columns]
    intersections = [combo for combo in policy.slices.intersections if all(c in present for c in combo)]
    live_slices = policy.slices.model_copy(update={"min_size": settings.min_slice_rows})
    live_policy = policy.model_copy(update={"slices": live_slices})
    y = frame[target].to_numpy()
    predictions = live_predictions(frame[windows.PREDICTION].to_numpy(), policy.task, profile.get("classes"))
    groups = evaluation.slice_masks(frame, present, intersections)
    results = serialise_results(evaluation.evaluate_rows(live_policy, y, predictions, groups))
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
    return results


def _higher(policy: "Policy", metric: str) -> bool:
    from model_lifecycle.core.policy import METRICS

    return METRICS[policy.task][metric]


def _shadow(findings: list[dict[str, Any]], policy: "Policy", window: windows.Window, labels: Any) -> dict[str, Any]:
    from model_lifecycle.core import evaluation

    present = [c for c in policy.slices.columns if c in window.columns]
    frame = window.read([windows.PREDICTION, windows.SHADOW, *present]).to_pandas()
    frame = frame[frame[windows.SHADOW].notna()]
    if frame.empty:
        return {"rows": 0, "agreement": None}
    agree = (frame[windows.PREDICTION].astype(str).to_numpy() == frame[windows.SHADOW].astype(str).to_numpy())
    by_slice = {}
    for key, index in evaluation.slice_masks(frame.reset_index(drop=True), present, []).items():
        if len(index) >= policy.monitoring.min_slice_rows:
            by_slice[key] = round(float(agree[index].mean()), 6)
    result = {"rows": int(len(frame)), "agreement": round(float(agree.mean()), 6), "by_slice": by_slice}
    floor = policy.monitoring.shadow.min_agreement
    if floor is not None:
        for key, value in {"overall": result["agreement"], **by_slice}.items():
            if value < floor:
                findings.append({"check": "shadow", "subject": key, "statistic": "agreement", "value": value,
                                 "threshold": floor, "level": WARNING,
                                 "detail": f"the challenger agrees with the champion on {value:.1%} of rows"})
    return result
