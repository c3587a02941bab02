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
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1e-4
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


@dataclass
class NumericCounts:
    """What the drift checks of one numeric column need, as integer counts that add up across the
    parts of a window (a Spark partition each, or the whole column): every statistic computed from
    them is the same, whichever engine or split produced them.

    ``below``/``upto``: for each split point of ``splits(summary)``, the window's present values
    strictly below it and at or below it."""

    rows: int = 0
    missing: int = 0  # null, NaN or infinite
    total: float = 0.0  # sum of the present values (for the window's mean)
    below: np.ndarray | None = None
    upto: np.ndarray | None = None
    text: bool = False  # values that are not numbers (the reference holds numbers)

    def __add__(self, other: "NumericCounts") -> "NumericCounts":
        def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return b if a is None else a if b is None else a + b

        return NumericCounts(self.rows + other.rows, self.missing + other.missing, self.total + other.total,
                             both(self.below, other.below), both(self.upto, other.upto), self.text or other.text)

    @property
    def present(self) -> int:
        return self.rows - self.missing


def splits(summary: dict[str, Any]) -> np.ndarray:
    """Every value at which the checks compare the window with the reference: the cumulative
    distribution's points, the PSI bin edges, and the reference's range."""
    parts = [summary.get("points") or [], summary.get("edges") or []]
    if summary.get("min") is not None:
        parts.append([summary["min"], summary["max"]])
    return np.unique(np.asarray([v for part in parts for v in part], dtype=float))


def numeric_counts(summary: dict[str, Any], values: Any, cut: np.ndarray | None = None) -> NumericCounts:
    """The counts of one column (or one part of it): two binary searches per value against the split
    points, no sort of the window."""
    try:
        numbers = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return NumericCounts(rows=len(values), text=True)
    cut = splits(summary) if cut is None else cut
    finite = np.isfinite(numbers)
    present = numbers[finite] if not finite.all() else numbers
    # x < s_k  iff  #splits <= x is at most k;  x <= s_k  iff  #splits < x is at most k
    below = np.cumsum(np.bincount(np.searchsorted(cut, present, side="right"), minlength=len(cut) + 1))[:len(cut)]
    upto = np.cumsum(np.bincount(np.searchsorted(cut, present, side="left"), minlength=len(cut) + 1))[:len(cut)]
    return NumericCounts(int(len(numbers)), int(len(numbers) - len(present)), float(present.sum(dtype=float)),
                         below.astype(np.int64), upto.astype(np.int64))


def _at(cut: np.ndarray, counts: np.ndarray, points: np.ndarray) -> np.ndarray:
    return counts[np.searchsorted(cut, points)]


def numeric_shares(summary: dict[str, Any], counts: NumericCounts) -> np.ndarray:
    """The window's share per reference bin (the profile's right-closed bins over its edges)."""
    cut = splits(summary)
    n = counts.present
    upto = _at(cut, counts.upto, np.asarray(summary["edges"], dtype=float))
    return np.diff(np.concatenate([[0], upto, [n]])) / max(n, 1)


def out_of_range(summary: dict[str, Any], counts: NumericCounts) -> float:
    cut = splits(summary)
    outside = _at(cut, counts.below, np.asarray([summary["min"]]))[0] + counts.present - \
        _at(cut, counts.upto, np.asarray([summary["max"]]))[0]
    return float(outside / counts.present)


def ks_counts(summary: dict[str, Any], counts: NumericCounts) -> tuple[float, float]:
    """(D, p) of the window against the profile's cumulative distribution, from counts.

    Both are right-continuous steps, so the largest gap lies at a jump: between two reference points
    the reference is flat and the window's distribution only rises, so its extremes there are the
    window's share at or below the left point and strictly below the right one. Exactly the largest
    gap over every window value, with no sort; the p-value is the asymptotic two-sample one
    ``scipy.stats.ks_2samp`` uses for these sizes."""
    from scipy.stats import kstwo, kstwobign

    points = np.asarray(summary["points"], dtype=float)
    n, m = counts.present, int(summary["rows"] * (1 - summary["missing_rate"]))
    if not n or not len(points) or not m:
        return float("nan"), float("nan")
    cdf = np.asarray(summary["cdf"], dtype=float)
    unique, last = np.unique(points[::-1], return_index=True)  # repeated quantiles: the last one's level
    level = cdf[::-1][last]
    cut = splits(summary)
    upto, below = _at(cut, counts.upto, unique), _at(cut, counts.below, unique)
    gaps = [np.abs(upto / n - level), np.abs(below[1:] / n - level[:-1]), [below[0] / n, abs(1.0 - level[-1])]]
    d = float(max(np.max(np.asarray(g, dtype=float)) if len(g) else 0.0 for g in gaps))
    en = n * m / (n + m)
    if en > EXACT_KS_UP_TO:  # Kolmogorov's limit: kstwo.sf takes seconds per call at millions of rows
        return d, float(min(1.0, max(0.0, kstwobign.sf(math.sqrt(en) * d))))
    return d, float(min(1.0, max(0.0, kstwo.sf(d, round(en))))) if en >= 1 else float("nan")


def numeric_bins(summary: dict[str, Any], present: np.ndarray) -> np.ndarray:
    """The window's share per reference bin (the same edges and side as the profile)."""
    return numeric_shares(summary, numeric_counts(summary, present))


def ks(summary: dict[str, Any], present: np.ndarray) -> tuple[float, float]:
    """(D, p) of the window's non-missing values against the profile's cumulative distribution."""
    return ks_counts(summary, numeric_counts(summary, present))


# Distinct values kept per categorical column besides the reference's own categories: beyond it, the
# least frequent values the reference never had are counted but not kept, so a high-cardinality
# column (an id, a free-text field) costs bounded memory in every batch, partition and on the driver.
CATEGORY_CAP = 10_000


@dataclass
class CategoryCounts:
    """Each present value's count in one categorical column (or one part of it), as the values are:
    their text is decided over all parts together (``profile.as_text`` writes whole floats as
    integers only when every value is one).

    Values that could be one of the reference's categories (``known``) are always kept, so every
    share the drift statistics use is exact. When more than ``CATEGORY_CAP`` others are distinct,
    the least frequent are *folded*: their rows are counted in ``folded`` (all of them unseen by the
    reference) and one value of each kind stays in ``kinds``, so the text decision over the kept
    values is the one all values would give. Only the names listed as unseen are then the most
    frequent of those kept, not necessarily of all."""

    rows: int = 0
    missing: int = 0
    values: dict[Any, int] | None = None
    known: frozenset = frozenset()
    folded: int = 0
    kinds: dict[Any, Any] | None = None  # value_kind -> one folded value of that kind

    def __add__(self, other: "CategoryCounts") -> "CategoryCounts":
        merged = dict(self.values or {})
        for key, count in (other.values or {}).items():
            merged[key] = merged.get(key, 0) + count
        return CategoryCounts(self.rows + other.rows, self.missing + other.missing, merged, self.known | other.known,
                              self.folded + other.folded, {**(other.kinds or {}), **(self.kinds or {})}).fold()

    @property
    def present(self) -> int:
        return self.rows - self.missing

    def fold(self) -> "CategoryCounts":
        """These counts with at most ``CATEGORY_CAP`` values besides those that could be known ones."""
        values = self.values or {}
        if len(values) <= CATEGORY_CAP + len(self.known):
            return self
        import heapq

        keep = {k: c for k, c in values.items() if not _foldable(k) or _texts(k) & self.known}
        others = [(k, c) for k, c in values.items() if k not in keep]
        kept = dict(heapq.nlargest(CATEGORY_CAP, others, key=lambda item: item[1]))
        kinds = dict(self.kinds or {})
        folded = self.folded
        for key, count in others:
            if key not in kept:
                folded += count
                kinds.setdefault(value_kind(key), key)
        return CategoryCounts(self.rows, self.missing, {**keep, **kept}, self.known, folded, kinds)

    def by_text(self) -> Any:
        """The kept counts as one pandas Series indexed by the values' text, largest first."""
        import pandas as pd

        from model_lifecycle.core.monitoring.profile import as_text

        if not self.values:
            return pd.Series([], dtype="int64")
        keys = list(self.values)
        texts = as_text(pd.Series(keys + list((self.kinds or {}).values()))).iloc[: len(keys)]
        return pd.Series(list(self.values.values()), index=texts.to_numpy()).groupby(level=0, sort=False).sum() \
            .sort_values(ascending=False, kind="stable")


def _foldable(value: Any) -> bool:
    """Text, numbers and booleans, whose possible texts are known. Other kinds (timestamps, bytes,
    decimals) are always kept: their text depends on every value of the column in ways these counts
    do not follow, so a high-cardinality column of them is not bounded."""
    return isinstance(value, (str, bool, int, float, np.bool_, np.integer, np.floating))


def _whole(value: Any) -> bool:
    """A float ``profile.as_text`` may write as an integer (finite, whole, within int64)."""
    return isinstance(value, (float, np.floating)) and abs(float(value)) < 2.0**63 and float(value).is_integer()


def value_kind(value: Any) -> tuple[str, str]:
    """What of a value decides the column's text: its type, whether a float is whole (``as_text``),
    and an integer's range (pandas reads ints beyond int64 or uint64 as objects, not numbers)."""
    if isinstance(value, (float, np.floating)):
        return type(value).__name__, "whole" if _whole(value) else "fraction"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        number = int(value)
        size = "negative" if number < 0 else "int64" if number < 2**63 else "uint64" if number < 2**64 else "big"
        if number < -(2**63):
            size = "big"
        return type(value).__name__, size
    return type(value).__name__, ""


def _texts(value: Any) -> set[str]:
    """Every text ``profile.as_text`` may give the value, whatever the column's other values are."""
    texts = {str(value)}
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        texts.add(str(float(value)))
        if _whole(value) or isinstance(value, (int, np.integer)):
            texts.add(str(int(value)))
    return texts


def category_counts(values: Any, known: Any = ()) -> CategoryCounts:
    """The counts of one part; ``known``: the reference's categories (as text), never folded."""
    import pandas as pd

    series = pd.Series(values, dtype=object)
    missing = series.isna()
    present = series[~missing]
    try:
        counts = present.value_counts(dropna=True)
    except TypeError:  # lists, arrays, maps: counted by their text, as the profile wrote them
        counts = present.map(lambda v: v if isinstance(v, (str, int, float, bool)) else str(v)).value_counts()
    return CategoryCounts(int(len(series)), int(missing.sum()), {k: int(v) for k, v in counts.items()},
                          frozenset(known or ())).fold()


def categorical_shares(
    summary: dict[str, Any], present: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(reference shares, window counts, window shares, unseen value -> count) over the reference's categories
    plus one bucket for everything else (the reference's ``other`` and values it never had)."""
    counts = category_counts(present, summary["frequencies"])
    return category_shares(summary, counts.by_text(), counts.folded)[:4]


def category_shares(
    summary: dict[str, Any], counts: Any, folded: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int], int]:
    """``categorical_shares`` from the window's kept counts by text (``CategoryCounts.by_text``) and
    the rows of folded values, and the number of rows with a value the reference never had (none
    are named when the reference folded its own rare values into ``other``)."""
    known = list(summary["frequencies"])
    reference = np.array([summary["frequencies"][k] for k in known] + [summary.get("other", 0.0)])
    window = np.array([int(counts.get(k, 0)) for k in known] + [int(counts.drop(known, errors="ignore").sum()) + folded])
    if summary.get("other", 0.0) > 0:
        unseen, unseen_rows = {}, 0
    else:
        unseen = {str(k): int(v) for k, v in counts.drop(known, errors="ignore").items()}
        unseen_rows = sum(unseen.values()) + folded
    return reference, window, window / max(window.sum(), 1), unseen, unseen_rows


def chi_square(reference: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chisquare

    total = window_counts.sum()
    if total == 0:
        return float("nan"), float("nan")
    expected = np.clip(reference, EPSILON, None)
    expected = expected / expected.sum() * total
    result = chisquare(window_counts, expected)
    return float(result.statistic), float(result.pvalue)
