"""The reference profile: a compact summary of the hold-out that monitoring compares windows with.

Stored with each version when the gate evaluates it (an artifact of the evaluation run, named by the
version's ``lifecycle.profile.run_id`` tag), so monitoring never needs the raw hold-out again. Per
feature: the missing rate and either, for numbers, min/max, ten quantile bins (for the population
stability index) and a cumulative distribution (the exact one for up to 200 distinct values, else
501 quantiles: Kolmogorov-Smirnov within about 1/500 of the exact statistic), or, for categories,
the frequencies of the 100 most common values. The same for the predictions, and the version's
metrics overall and by slice with intervals. A 1M-row, 20-feature hold-out gives about 200 kB.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

SCHEMA = 1
BINS = 10  # quantile bins of the population stability index
EXACT_UP_TO = 200  # distinct values kept exactly in the cumulative distribution
QUANTILES = 501  # otherwise: this many quantiles
TOP_CATEGORIES = 100


def is_numeric(values: Any) -> bool:
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    return kind in "iuf"


def numeric_summary(values: np.ndarray) -> dict[str, Any]:
    """Missing rate, range, PSI bin edges with the reference's share per bin, and a cumulative distribution."""
    values = np.asarray(values, dtype=float)
    missing = ~np.isfinite(values)
    present = np.sort(values[~missing])
    summary: dict[str, Any] = {"kind": "numeric", "rows": int(len(values)),
                               "missing_rate": float(missing.mean()) if len(values) else 0.0}
    if not len(present):
        return {**summary, "min": None, "max": None, "edges": [], "proportions": [], "points": [], "cdf": []}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1], method="inverted_cdf"))
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    unique, first = np.unique(present, return_index=True)
    if len(unique) <= EXACT_UP_TO:
        ends = np.append(first[1:], len(present))
        points, cdf = unique, ends / len(present)
    else:
        probabilities = np.arange(1, QUANTILES + 1) / QUANTILES
        points, cdf = np.quantile(present, probabilities, method="inverted_cdf"), probabilities
    return {**summary, "min": float(present[0]), "max": float(present[-1]), "mean": float(present.mean()),
            "edges": edges.tolist(), "proportions": (counts / len(present)).tolist(),
            "points": np.asarray(points, dtype=float).tolist(), "cdf": np.asarray(cdf, dtype=float).tolist()}


def categorical_summary(values: Any) -> dict[str, Any]:
    """Missing rate and the frequencies of the most common values (as text), the rest as ``other``."""
    import pandas as pd

    series = pd.Series(values)
    missing = series.isna()
    present = as_text(series[~missing])
    counts = present.value_counts()
    top = counts.head(TOP_CATEGORIES)
    total = max(len(present), 1)
    return {"kind": "categorical", "rows": int(len(series)), "missing_rate": float(missing.mean()) if len(series) else 0.0,
            "frequencies": {str(k): float(v / total) for k, v in top.items()},
            "other": float(counts.iloc[TOP_CATEGORIES:].sum() / total) if len(counts) > TOP_CATEGORIES else 0.0}


def as_text(series: Any) -> Any:
    """Category values as text, whole floats as integers (a label 1 captured as 1.0 is still "1")."""
    import pandas as pd

    series = pd.Series(series)
    if (series.dtype.kind == "f" and len(series) and bool((series.abs() < 2.0**63).all())
            and bool((series == series.round()).all())):  # (not inf, nor a float beyond int64)
        series = series.astype("int64")
    return series.astype(str)


def summarise(values: Any) -> dict[str, Any]:
    return numeric_summary(np.asarray(values)) if is_numeric(values) else categorical_summary(values)


def build(
    *, model: str | None, version: str | None, task: str, features: "Any", predictions: Any,
    results: dict[str, Any], holdout: dict[str, Any], slices: dict[str, Any], classes: list[Any] | None,
) -> dict[str, Any]:
    """The profile of one version on the hold-out it was evaluated on.

    ``features`` is the model's input frame; ``predictions`` the evaluation's ``Predictions`` (the
    served prediction is the label for classifiers, the value for regressors; a binary classifier's
    score is profiled too, for models that serve probabilities)."""
    served = predictions.values if task == "regression" else predictions.labels
    profile: dict[str, Any] = {
        "schema": SCHEMA, "model": model, "version": version, "task": task,
        "rows": int(len(features)), "holdout": {k: holdout[k] for k in ("rows", "sha256") if k in holdout},
        "classes": [_plain(c) for c in classes] if classes is not None else None,
        "features": {str(c): summarise(features[c].to_numpy()) for c in features.columns},
        "prediction": (numeric_summary(served) if task == "regression" else categorical_summary(served))
        if served is not None else None,
        "score": numeric_summary(predictions.scores) if task == "binary" and predictions.scores is not None else None,
        "results": results, "slices": slices,
    }
    return profile


def to_json(profile: dict[str, Any]) -> str:
    return json.dumps(profile, sort_keys=True, separators=(",", ":"), default=str)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
