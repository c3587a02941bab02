"""Drift statistics of a window against a reference profile, computed with scipy.

- Population stability index over the reference's quantile bins (numbers) or categories:
  ``sum((w - r) * ln(w / r))``, with empty bins smoothed to 1e-4 so one empty bin cannot make it infinite.
- Kolmogorov-Smirnov (numbers): the largest gap between the window's and the reference's cumulative
  distributions, with the p-value scipy's ``ks_2samp`` gives for the same sizes (``kstwo``) up to an
  effective size of 10,000 rows, and Kolmogorov's limiting distribution (``kstwobign``) beyond,
  where ``kstwo`` takes seconds per feature and the two agree to within a fraction of a percent.
- Chi-square (categories): ``scipy.stats.chisquare`` of the window's counts against the reference's shares.
- Jensen-Shannon distance (both): ``scipy.spatial.distance.jensenshannon`` of the binned distributions, base 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EPSILON = 1e-4
KS_BLOCK = 1_000_000  # window values compared at once
EXACT_KS_UP_TO = 10_000  # effective sample size up to which the p-value is scipy's exact kstwo
OTHER = "__other__"


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    r = np.clip(np.asarray(reference, dtype=float), EPSILON, None)
    w = np.clip(np.asarray(window, dtype=float), EPSILON, None)
    r, w = r / r.sum(), w / w.sum()
    return float(np.sum((w - r) * np.log(w / r)))


def js(reference: np.ndarray, window: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(np.asarray(reference, dtype=float), np.asarray(window, dtype=float), base=2))


def numeric_bins(summary: dict[str, Any], present: np.ndarray) -> np.ndarray:
    """The window's share per reference bin (the same edges and side as the profile)."""
    edges = np.asarray(summary["edges"], dtype=float)
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return counts / max(len(present), 1)


def ks(summary: dict[str, Any], present: np.ndarray) -> tuple[float, float]:
    """(D, p) of the window's sorted non-missing values against the profile's cumulative distribution.

    Both distributions are right-continuous steps, so the largest gap is at one of their jump points;
    the p-value is the asymptotic two-sample one ``scipy.stats.ks_2samp`` uses for these sizes."""
    from scipy.stats import kstwo, kstwobign

    points = np.asarray(summary["points"], dtype=float)
    cdf = np.asarray(summary["cdf"], dtype=float)
    window = np.sort(np.asarray(present, dtype=float))
    n, m = len(window), int(summary["rows"] * (1 - summary["missing_rate"]))
    if not n or not len(points) or not m:
        return float("nan"), float("nan")

    def reference_at(x: np.ndarray) -> np.ndarray:
        index = np.searchsorted(points, x, side="right") - 1
        return np.where(index >= 0, cdf[np.maximum(index, 0)], 0.0)

    d = float(np.max(np.abs(np.searchsorted(window, points, side="right") / n - reference_at(points))))
    for start in range(0, n, KS_BLOCK):  # the window's own jump points, a block at a time (bounded memory)
        block = window[start: start + KS_BLOCK]
        observed = np.searchsorted(window, block, side="right") / n
        d = max(d, float(np.max(np.abs(observed - reference_at(block)))))
    en = n * m / (n + m)
    if en > EXACT_KS_UP_TO:  # Kolmogorov's limit: kstwo.sf takes seconds per call at millions of rows
        return d, float(min(1.0, max(0.0, kstwobign.sf(math.sqrt(en) * d))))
    return d, float(min(1.0, max(0.0, kstwo.sf(d, round(en))))) if en >= 1 else float("nan")


def categorical_shares(
    summary: dict[str, Any], present: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(reference shares, window counts, window shares, unseen value -> count) over the reference's categories
    plus one bucket for everything else (the reference's ``other`` and values it never had)."""
    from model_lifecycle.core.monitoring.profile import as_text

    counts = as_text(present).value_counts()
    known = list(summary["frequencies"])
    reference = np.array([summary["frequencies"][k] for k in known] + [summary.get("other", 0.0)])
    window = np.array([int(counts.get(k, 0)) for k in known] + [int(counts.drop(known, errors="ignore").sum())])
    unseen = {} if summary.get("other", 0.0) > 0 else {
        str(k): int(v) for k, v in counts.drop(known, errors="ignore").items()}
    return reference, window, window / max(window.sum(), 1), unseen


def chi_square(reference: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chisquare

    total = window_counts.sum()
    if total == 0:
        return float("nan"), float("nan")
    expected = np.clip(reference, EPSILON, None)
    expected = expected / expected.sum() * total
    result = chisquare(window_counts, expected)
    return float(result.statistic), float(result.pvalue)
