"""Reading a production window: the capture files ``serve`` writes, or any table of the same shape.

The documented shape (one row per scored record): ``request_id``, optionally ``record`` (index in the
request), ``timestamp`` (UTC), ``model_version``, the input columns, ``prediction`` and, with a shadow
challenger, ``shadow_prediction``. Parquet or CSV files; a file, a folder (``date=/hour=`` partitions
are read as such), a glob, or a URI pyarrow reaches (``s3://``, ``gs://``). Labels are a table with
``request_id`` (and ``record`` when the window has several records per request), the target column,
and optionally slice columns the requests did not carry.

The judged columns are read in batches with the window's filter pushed down to pyarrow, so memory
holds one batch, never the whole window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from model_lifecycle.core.tables import open_table, short as _short
from model_lifecycle.errors import BadInput

REQUEST_ID = "request_id"
RECORD = "record"
TIMESTAMP = "timestamp"
VERSION = "model_version"
PREDICTION = "prediction"
SHADOW = "shadow_prediction"
RESERVED = {REQUEST_ID, RECORD, TIMESTAMP, VERSION, PREDICTION, SHADOW, "shadow_version", "latency_ms", "date", "hour"}


@dataclass
class Window:
    """An opened window: the dataset, the filter that selects its rows, and its columns."""

    source: str
    dataset: Any
    filter: Any
    columns: list[str]
    since: datetime | None
    until: datetime | None

    def read(self, columns: list[str]) -> Any:
        """A pyarrow Table of just these columns, rows of the window only."""
        try:
            return self.dataset.to_table(columns=columns, filter=self.filter)
        except Exception as exc:  # noqa: BLE001 - a broken file or a type clash is the window's fault
            raise BadInput(f"window {self.source!r} could not be read ({', '.join(columns)}): {_short(exc)}") from exc

    def batches(self, columns: list[str], rows: int) -> Any:
        """Record batches of these columns, rows of the window only, about ``rows`` at a time."""
        try:
            for batch in self.dataset.to_batches(columns=columns, filter=self.filter, batch_size=rows):
                if batch.num_rows:
                    yield batch
        except Exception as exc:  # noqa: BLE001 - a broken file or a type clash is the window's fault
            raise BadInput(f"window {self.source!r} could not be read ({', '.join(columns[:5])}"
                           f"{', ...' if len(columns) > 5 else ''}): {_short(exc)}") from exc

    def read_all(self, columns: list[str]) -> Any:
        """These columns over every row of the source, ignoring the time and version filter."""
        try:
            return self.dataset.to_table(columns=columns)
        except Exception as exc:  # noqa: BLE001
            raise BadInput(f"window {self.source!r} could not be read: {_short(exc)}") from exc

    def count(self) -> int:
        try:
            return int(self.dataset.count_rows(filter=self.filter))
        except Exception as exc:  # noqa: BLE001
            raise BadInput(f"window {self.source!r} could not be read: {_short(exc)}") from exc


def open_window(source: str, *, since: datetime | None, until: datetime | None, version: str | None) -> Window:
    """The rows of ``source`` scored by ``version`` (when the window records versions) in [since, until)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = open_table(source)
    columns = list(dataset.schema.names)
    expression = None

    def both(part: Any) -> None:
        nonlocal expression
        expression = part if expression is None else expression & part

    if since is not None or until is not None:
        if TIMESTAMP not in columns:
            raise BadInput(f"window {source!r} has no {TIMESTAMP!r} column, so --since/--until cannot select rows")
        stamp = ds.field(TIMESTAMP).cast(pa.timestamp("us", tz="UTC"))
        if since is not None:
            both(stamp >= pa.scalar(since, type=pa.timestamp("us", tz="UTC")))
        if until is not None:
            both(stamp < pa.scalar(until, type=pa.timestamp("us", tz="UTC")))
    if version is not None and VERSION in columns and not _only_version(dataset, str(version), source):
        both(ds.field(VERSION).cast(pa.string()) == str(version))
    return Window(source, dataset, expression, columns, since, until)


def _only_version(dataset: Any, version: str, source: str) -> bool:
    """Whether every row was scored by ``version``: then no column read needs the version filter
    (each filtered read would read and compare the version column again)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        found = pc.unique(dataset.to_table(columns=[VERSION]).column(0).cast(pa.string())).to_pylist()
    except Exception as exc:  # noqa: BLE001
        raise BadInput(f"window {source!r} could not be read: {_short(exc)}") from exc
    return found == [version]


def time_span(window: Window) -> tuple[datetime | None, datetime | None]:
    """The window's start and end: --since/--until when given, else the first and last record's time."""
    start, end = window.since, window.until
    if (start is None or end is None) and TIMESTAMP in window.columns:
        import pyarrow as pa
        import pyarrow.compute as pc

        stamps = window.read([TIMESTAMP]).column(0).cast(pa.timestamp("us", tz="UTC"))
        if len(stamps):
            bounds = pc.min_max(stamps).as_py()
            start = start or bounds["min"]
            end = end or bounds["max"]
    return start, end


_RELATIVE = {"m": 60, "h": 3600, "d": 86400}


def parse_time(text: str | None, flag: str, now: datetime | None = None) -> datetime | None:
    """An ISO time (``2026-11-27T10:00``, ``2026-11-27``; UTC unless it says otherwise), or a time
    relative to now (``-24h``, ``-7d``, ``-30m``: what a scheduled job means by "the last day")."""
    from datetime import timedelta

    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if text[:1] == "-" and text[-1:] in _RELATIVE and text[1:-1].replace(".", "", 1).isdigit():
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=float(text[1:-1]) * _RELATIVE[text[-1]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"{flag}: {text!r} is not an ISO time (e.g. 2026-11-27T10:00:00Z)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def as_numpy(column: Any) -> np.ndarray:
    """A pyarrow column as numpy; nulls become NaN in numbers, None otherwise."""
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy(zero_copy_only=False).astype(float) if column.null_count else column.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(column.type):
        return np.asarray(column.to_pylist(), dtype=object)
    return column.to_pandas().to_numpy()

