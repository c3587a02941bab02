"""The local engine's reads of a window: pyarrow, one column at a time, on this machine.

``assess`` asks an engine for counts and aggregates only (``WindowReader`` in ``assess``); this one
reads the judged columns in batches, counts each batch (``drift.numeric_counts`` /
``drift.category_counts``) and adds the counts, so memory holds one batch, never the whole window. The Spark engine
(``core/engines/spark_window.py``) answers the same questions where the window lives.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from model_lifecycle.core.monitoring import drift
from model_lifecycle.core.monitoring import window as windows
from model_lifecycle.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from model_lifecycle.core.policy import Policy

BATCH_ROWS = 250_000  # window rows counted at a time


class LocalReader:
    engine = "local"

    def __init__(self, window: windows.Window) -> None:
        self.window = window
        self.source = window.source
        self.columns = window.columns
        self.filtered = window.filter is not None
        self._rows: int | None = None

    def count(self) -> int:
        if self._rows is None:
            self._rows = self.window.count()
        return self._rows

    def time_span(self) -> tuple[datetime | None, datetime | None]:
        return windows.time_span(self.window)

    def floating(self, column: str) -> bool:
        import pyarrow as pa

        return pa.types.is_floating(self.window.dataset.schema.field(column).type)

    def column_counts(self, summaries: dict[str, dict[str, Any]], progress: Any = None) -> dict[str, Any]:
        """Per column: ``drift.NumericCounts`` or ``drift.CategoryCounts`` against its summary, added up
        over batches of ``BATCH_ROWS`` rows (memory holds one batch of the columns, whatever the window's size)."""
        names = list(summaries)
        cuts = {n: drift.splits(s) for n, s in summaries.items() if s["kind"] == "numeric"}

        def count(name: str, values: Any) -> Any:
            if name in cuts:
                return drift.numeric_counts({}, values, cuts[name])
            return drift.category_counts(values, summaries[name]["frequencies"])

        totals = {name: count(name, []) for name in names}
        done, total = 0, self.count()
        for batch in self.window.batches(names, BATCH_ROWS):
            for name in names:
                totals[name] = totals[name] + count(name, windows.as_numpy(batch.column(name)))
            done += batch.num_rows
            if progress is not None:
                progress(done, total, "window rows judged")
        return totals

    def labelled(self, labels: Any, target: str, delay_hours: float, now: datetime | None, policy: "Policy",
                 profile: dict[str, Any], live_policy: "Policy") -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(label coverage, live results by slice as the gate serialises them, or None without labels)."""
        joined = _join_labels(self.window, labels, target, delay_hours, now, policy.slices.columns)
        if joined["frame"] is None:
            return joined["info"], None
        return joined["info"], _live_results(live_policy, profile, joined["frame"], target)

    def shadow(self, slice_columns: list[str]) -> dict[str, Any]:
        """Rows with a shadow prediction, how many agree with the served one, overall and by slice.

        Compared as numbers when both columns are numbers (a sampled shadow column with gaps is read
        as floats: 1.0 agrees with 1), else as text; slice values as Arrow's text, as in the label join."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from model_lifecycle.core import evaluation

        present = [c for c in slice_columns if c in self.columns]
        table = self.window.read([windows.PREDICTION, windows.SHADOW, *present])
        shadow = table.column(windows.SHADOW)
        kept = pc.is_valid(shadow)
        if pa.types.is_floating(shadow.type):
            kept = pc.and_(kept, pc.invert(pc.is_nan(shadow)))
        table = table.filter(kept)
        agree = pc.fill_null(same_prediction(table.column(windows.PREDICTION), table.column(windows.SHADOW)), False)
        agree = agree.to_numpy(zero_copy_only=False).astype(bool)
        for column in present:
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, pc.dictionary_encode(table.column(column).cast(pa.string())))
        frame = table.select(present).to_pandas()
        by_slice = {key: (int(len(index)), int(agree[index].sum()))
                    for key, index in evaluation.slice_masks(frame, present, []).items()} if len(agree) else {}
        return {"rows": int(len(agree)), "agree": int(agree.sum()), "by_slice": by_slice}


def same_prediction(served: Any, shadow: Any) -> Any:
    """Where two prediction columns agree: as numbers when both are numbers, else as text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def numeric(kind: Any) -> bool:
        return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)

    if numeric(served.type) and numeric(shadow.type):
        return pc.equal(served.cast(pa.float64()), shadow.cast(pa.float64()))
    return pc.equal(served.cast(pa.string()), shadow.cast(pa.string()))


def read_labels(path: str) -> Any:
    """The labels as one Arrow table: ten million ids stay one buffer, not ten million Python strings."""
    table = windows.open_table(path, "labels")
    try:
        return table.to_table()
    except Exception as exc:  # noqa: BLE001 - a broken labels file is the caller's input
        raise BadInput(f"labels {path!r} could not be read: {str(exc).splitlines()[0][:300]}") from exc


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
    check_label_columns(columns, target, window.columns, window.source)
    if labels.num_rows == 0:
        return {"info": {"labels": 0, "joined": 0, "unmatched": 0}, "frame": None}
    keys = join_keys(columns, window.columns)
    label_ids = labels.column(windows.REQUEST_ID).cast(pa.string())
    source_ids = window.read_all([windows.REQUEST_ID]).column(0).cast(pa.string())
    matched = pc.is_in(label_ids, value_set=pc.unique(source_ids))
    del source_ids
    if not pc.any(matched).as_py():
        raise no_label_matches(labels.num_rows, label_ids[0].as_py(), window.source)
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
    info = label_info(int(labels.num_rows), int(joined.num_rows), int(labels.num_rows - pc.sum(matched).as_py()),
                      eligible)
    if joined.num_rows:  # slice keys as categories: no Python string per row
        kept = joined.select([windows.PREDICTION, target, *from_labels, *from_window])
        for column in [*from_labels, *from_window]:
            index = kept.schema.get_field_index(column)
            kept = kept.set_column(index, column, pc.dictionary_encode(kept.column(column).cast(pa.string())))
        frame = kept.to_pandas()
    else:
        frame = None
    return {"info": info, "frame": frame}


def check_label_columns(columns: list[str], target: str, window_columns: list[str], source: str) -> None:
    if windows.REQUEST_ID not in columns:
        raise BadInput(f"labels have no {windows.REQUEST_ID!r} column", hint="labels are joined by request id")
    if target not in columns:
        raise BadInput(f"labels have no {target!r} column (the policy's holdout.target)",
                       hint="name it with --label-column")
    if windows.REQUEST_ID not in window_columns:
        raise BadInput(f"window {source!r} has no {windows.REQUEST_ID!r} column to join labels on")


def join_keys(label_columns: list[str], window_columns: list[str]) -> list[str]:
    both = windows.RECORD in label_columns and windows.RECORD in window_columns
    return [windows.REQUEST_ID] + ([windows.RECORD] if both else [])


def no_label_matches(count: int, first: Any, source: str) -> BadInput:
    return BadInput(f"none of the {count} labels matches a request id of window {source!r} (first: {first!r})",
                    hint="labels are joined on the request_id that serve recorded (X-Request-Id)")


def label_info(labels: int, joined: int, unmatched: int, eligible: int) -> dict[str, Any]:
    return {"labels": labels, "joined": joined, "unmatched": unmatched,
            "coverage": round(joined / eligible, 4) if eligible else None}


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
    if serves_scores(task, classes, array.dtype.kind == "f", lambda: not np.isin(array, [0.0, 1.0]).all()):
        return Predictions(labels=np.where(array >= 0.5, classes[1], classes[0]), scores=array, classes=classes)
    if classes:  # labels as the model's classes (capture may hold 1.0 for 1)
        kinds = {type(c) for c in classes}
        if kinds <= {int} and array.dtype.kind == "f":
            array = array.astype(int)
    return Predictions(labels=array, classes=classes if task == "binary" else None)


def serves_scores(task: str, classes: list[Any] | None, floating: bool, not_only_0_1: Any) -> bool:
    """Whether a binary classifier's served predictions are probabilities (floats, not all 0 or 1)."""
    return bool(task == "binary" and floating and classes and len(classes) == 2 and not_only_0_1())


def _live_results(live_policy: "Policy", profile: dict[str, Any], frame: Any, target: str) -> dict[str, Any]:
    """The gate's own evaluation of the labelled rows, overall and by slice, with intervals."""
    from model_lifecycle.core import evaluation
    from model_lifecycle.core.verdict import serialise_results

    present = [c for c in live_policy.slices.columns if c in frame.columns]
    intersections = [combo for combo in live_policy.slices.intersections if all(c in present for c in combo)]
    y = frame[target].to_numpy()
    predictions = live_predictions(frame[windows.PREDICTION].to_numpy(), live_policy.task, profile.get("classes"))
    groups = evaluation.slice_masks(frame, present, intersections)
    return serialise_results(evaluation.evaluate_rows(live_policy, y, predictions, groups))
