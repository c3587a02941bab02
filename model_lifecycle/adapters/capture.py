"""Data capture: every scored record, written off the request path to Parquet files by date and hour.

Parquet rather than JSON Lines: it is the format of inference tables, keeps the feature columns
typed for the monitoring step, and is read in column batches by pyarrow (local folders or any
filesystem pyarrow/fsspec reaches: ``s3://``, ``gs://``). Layout::

    <capture-dir>/date=2026-11-27/hour=10/part-<uuid>.parquet

One row per input record: ``request_id``, ``record`` (index in the request), ``timestamp`` (UTC),
``model_version``, ``latency_ms``, the input columns (minus those never to be stored),
``prediction`` (JSON text when not a scalar) and, with a shadow challenger, ``shadow_version`` and
``shadow_prediction``. Labels arrive later as a file keyed by ``request_id`` (and ``record``).

The request path only puts a small tuple on a bounded queue (``put_nowait``); a full queue drops
the record and counts it. A writer thread parses, batches and writes; a failing filesystem drops
and counts too. Capture can therefore never fail a request or slow it beyond one queue put.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

log = logging.getLogger("model_lifecycle.capture")


@dataclass
class Captured:
    """One scored request, as the request path hands it over (nothing parsed yet)."""

    request_id: str
    timestamp: float
    version: str
    latency_ms: float
    body: bytes
    content_type: str
    response: bytes
    shadow_version: str | None = None
    shadow_response: Any = None  # predictions of the shadow model, filled off the request path


@dataclass
class CaptureStats:
    queued: int = 0
    written: int = 0  # records (rows) written
    dropped_queue_full: int = 0
    dropped_write_error: int = 0
    parse_errors: int = 0


@dataclass
class CaptureWriter:
    """A bounded queue and a thread that writes Parquet parts; ``close()`` flushes what is queued."""

    destination: str
    sample: float = 1.0
    exclude_columns: tuple[str, ...] = ()
    queue_size: int = 10_000
    flush_records: int = 1_000
    flush_seconds: float = 2.0
    parse: Callable[[Captured], Any] | None = None  # body -> DataFrame (the model's own input parsing)
    on_batch: Callable[[list[Captured]], None] | None = None  # e.g. shadow scoring, before writing
    stats: CaptureStats = field(default_factory=CaptureStats)

    def __post_init__(self) -> None:
        import pyarrow.fs as pafs

        self._queue: queue.Queue[Captured | None] = queue.Queue(maxsize=self.queue_size)
        self._fs, self._root = pafs.FileSystem.from_uri(_as_uri(self.destination))
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._lock = threading.Lock()
        self._rand = __import__("random").Random()

    def check_writable(self) -> None:
        """Fail at start (not on the first request) when the destination cannot be written."""
        probe = f"{self._root.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
        self._fs.create_dir(self._root, recursive=True)
        with self._fs.open_output_stream(probe) as handle:
            handle.write(b"ok")
        self._fs.delete_file(probe)

    def start(self) -> "CaptureWriter":
        self._thread.start()
        return self

    def offer(self, item: Captured) -> None:
        """Called on the request path: never blocks, never raises."""
        if self.sample < 1.0 and self._rand.random() >= self.sample:
            return
        try:
            self._queue.put_nowait(item)
            with self._lock:
                self.stats.queued += 1
        except queue.Full:
            with self._lock:
                self.stats.dropped_queue_full += 1

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    # --- writer thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[Captured] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            if item is None:
                self._flush(batch)
                return
            if item is not ...:
                batch.append(item)
            if len(batch) >= self.flush_records or time.monotonic() >= deadline:
                self._flush(batch)
                batch = []
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, batch: list[Captured]) -> None:
        if not batch:
            return
        if self.on_batch is not None:
            try:
                self.on_batch(batch)
            except Exception:  # noqa: BLE001 - shadow scoring must never lose the captured records
                log.exception("shadow scoring failed for a batch of %d requests", len(batch))
        rows = []
        for item in batch:
            try:
                rows.extend(self._rows(item))
            except Exception:  # noqa: BLE001 - one unparseable request must not lose the others
                with self._lock:
                    self.stats.parse_errors += 1
        if not rows:
            return
        try:
            self._write(rows)
            with self._lock:
                self.stats.written += len(rows)
        except Exception as exc:  # noqa: BLE001 - a full disk or lost bucket drops records, never requests
            log.warning("capture: could not write %d records (%s); dropped", len(rows), type(exc).__name__)
            with self._lock:
                self.stats.dropped_write_error += len(rows)

    def _rows(self, item: Captured) -> list[dict[str, Any]]:
        predictions = _predictions(item.response)
        shadow = _predictions(item.shadow_response) if item.shadow_response is not None else None
        records = _json_records(item)  # the common JSON forms, read directly: no DataFrame per request
        if records is None:
            frame = self.parse(item) if self.parse else None
            records = frame.to_dict("records") if frame is not None else [{} for _ in predictions]
        when = datetime.fromtimestamp(item.timestamp, tz=timezone.utc)
        rows = []
        for index, features in enumerate(records):
            row = {"request_id": item.request_id, "record": index, "timestamp": when,
                   "model_version": item.version, "latency_ms": item.latency_ms}
            row.update({k: v for k, v in features.items() if k not in self.exclude_columns})
            row["prediction"] = _scalar(predictions[index]) if index < len(predictions) else None
            if shadow is not None:
                row["shadow_version"] = item.shadow_version
                row["shadow_prediction"] = _scalar(shadow[index]) if index < len(shadow) else None
            rows.append(row)
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        by_hour: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            moment = row["timestamp"]
            by_hour.setdefault((moment.strftime("%Y-%m-%d"), moment.strftime("%H")), []).append(row)
        for (day, hour), part in by_hour.items():
            folder = f"{self._root.rstrip('/')}/date={day}/hour={hour}"
            self._fs.create_dir(folder, recursive=True)
            table = pa.Table.from_pylist(part)
            pq.write_table(table, f"{folder}/part-{uuid.uuid4().hex}.parquet", filesystem=self._fs)


def _json_records(item: Captured) -> list[dict[str, Any]] | None:
    """Input records of a JSON ``dataframe_split`` / ``dataframe_records`` / record-list ``inputs``
    request, as plain dicts; None for any other form (then MLflow's own parsing is used). The
    scoring app already validated the request against the signature before answering 200."""
    if not item.content_type.split(";")[0].strip().endswith("json"):
        return None
    try:
        payload = json.loads(item.body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    split = payload.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
        columns = [str(c) for c in split["columns"]]
        return [dict(zip(columns, row)) for row in split["data"] if isinstance(row, list)]
    for key in ("dataframe_records", "inputs", "instances"):
        rows = payload.get(key)
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            return rows
    return None


def _as_uri(destination: str) -> str:
    if "://" in destination:
        return destination
    from pathlib import Path

    return Path(destination).resolve().as_uri()


def _predictions(response: Any) -> list[Any]:
    """The list of predictions in a scoring-server answer (``{"predictions": [...]}``) or a raw list."""
    if isinstance(response, (bytes, str)):
        try:
            response = json.loads(response)
        except ValueError:
            return []
    if isinstance(response, dict):
        response = response.get("predictions", [])
    if hasattr(response, "tolist"):
        response = response.tolist()
    return list(response) if isinstance(response, (list, tuple)) else [response]


def _scalar(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value
