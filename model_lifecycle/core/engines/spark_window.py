"""The Spark engine for monitoring: a production window judged where it lives.

``open_window`` reads the window with Spark (capture files, any Parquet/CSV files, a folder, a glob,
a URI Spark reads, or ``table:<name>`` in the Spark catalog) and returns a reader that answers
``assess`` the way the local engine's does (``core.monitoring.local.LocalReader``), so findings,
status, the recorded run and the report are built from it unchanged:

* rows, time span: one aggregation over the window's rows (``--since``/``--until`` and the version
  pushed down as a filter);
* every feature and the prediction: one pass in which each partition counts its rows with the local
  engine's own functions (``drift.numeric_counts`` against the reference's split points,
  ``drift.category_counts``); the driver adds the counts. The drift statistics, range and missing
  rates are then computed from the same integers as locally: equal to the local engine's, not close;
* live metrics: the labels (read by Spark too) joined by request id in Spark, and the metrics
  overall and by slice aggregated there with the gate's Spark aggregation (``spark._grouped``,
  ``_rank_sums``, ``_confusion``): the local engine's values and intervals up to float rounding;
* shadow agreement: one grouped count.

The partition function ships the ``drift`` module by value (cloudpickle), so a cluster's workers need
numpy and pandas, not this package.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from model_lifecycle.core.engines import spark as engine
from model_lifecycle.core.engines.spark import _col
from model_lifecycle.core.evaluation import slice_key
from model_lifecycle.core.monitoring import drift, local
from model_lifecycle.core.monitoring import window as windows
from model_lifecycle.errors import BadInput, ToolkitError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from model_lifecycle.core.policy import Policy

_P = engine._P
JUDGING = "judging the window"


def open_window(source: str, *, since: datetime | None, until: datetime | None, version: str | None,
                spark: "SparkSession | None" = None) -> "SparkReader":
    """The rows of ``source`` scored by ``version`` (when the window records versions) in [since, until)."""
    from pyspark.sql import functions as F

    if spark is None:
        try:
            spark = engine.session()
        except Exception as exc:  # noqa: BLE001 - no Java, a cluster that cannot be reached
            from model_lifecycle.errors import ServiceError

            raise ServiceError(f"Spark could not start: {engine._first_line(exc)}",
                               hint="the spark engine needs Java 17 (JAVA_HOME) and, for a cluster, "
                                    "LIFECYCLE_SPARK_MASTER") from exc
    frame = _guarded(lambda: engine.read_source(spark, source, role="window",
                                                hint="the window is the capture folder, files or table:<name>"))
    columns = list(frame.columns)
    condition = None

    def both(part: "Column") -> None:
        nonlocal condition
        condition = part if condition is None else condition & part

    if since is not None or until is not None:
        if windows.TIMESTAMP not in columns:
            raise BadInput(f"window {source!r} has no {windows.TIMESTAMP!r} column, so --since/--until cannot select rows")
        stamp = _col(windows.TIMESTAMP).cast("timestamp")
        if since is not None:
            both(stamp >= F.lit(since))
        if until is not None:
            both(stamp < F.lit(until))
    if version is not None and windows.VERSION in columns:
        from pyspark.sql import types as T

        recorded = _col(windows.VERSION)
        if isinstance(frame.schema[windows.VERSION].dataType, T.NumericType):  # 3.0 is version 3, as in Arrow
            recorded = recorded.cast("long")
        both(recorded.cast("string") == F.lit(str(version)))
    rows = frame if condition is None else frame.where(condition)
    return SparkReader(source, frame, rows, columns, condition is not None, spark, since, until)


@dataclass
class SparkReader:
    source: str
    everything: "DataFrame"  # every row of the source (the label match looks at all of them, as locally)
    frame: "DataFrame"  # the window's rows
    columns: list[str]
    filtered: bool
    spark: "SparkSession"
    since: datetime | None = None  # --since/--until: the window's span when given
    until: datetime | None = None
    engine: str = "spark"
    _overview: dict[str, Any] | None = field(default=None, repr=False)

    # --- rows and time ---------------------------------------------------------------------------

    def _overview_stats(self) -> dict[str, Any]:
        from pyspark.sql import functions as F

        if self._overview is None:
            aggregates = [F.count(F.lit(1)).alias("rows")]
            if windows.TIMESTAMP in self.columns:
                micros = F.unix_micros(_col(windows.TIMESTAMP).cast("timestamp"))
                aggregates += [F.min(micros).alias("first"), F.max(micros).alias("last")]
            self._overview = self._run(lambda: self.frame.agg(*aggregates).first().asDict())
        return self._overview

    def count(self) -> int:
        return int(self._overview_stats()["rows"])

    def time_span(self) -> tuple[datetime | None, datetime | None]:
        stats = self._overview_stats()
        first, last = stats.get("first"), stats.get("last")

        def moment(micros: int | None) -> datetime | None:
            return None if micros is None else datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)

        return self.since or moment(first), self.until or moment(last)

    def floating(self, column: str) -> bool:
        from pyspark.sql import types as T

        return isinstance(self.frame.schema[column].dataType, (T.FloatType, T.DoubleType))

    # --- features and predictions ----------------------------------------------------------------

    def column_counts(self, summaries: dict[str, dict[str, Any]], progress: Any = None) -> dict[str, Any]:
        """Every column's counts in one pass: each partition counts, the driver adds."""
        from pyspark import cloudpickle

        names = list(summaries)
        if not names:
            return {}
        plan = {name: (summary["kind"], drift.splits(summary).tolist() if summary["kind"] == "numeric"
                       else list(summary["frequencies"])) for name, summary in summaries.items()}
        total = self.count()
        if progress is not None:
            progress(0, total, "window rows counted")
        _ship_by_value(cloudpickle)
        parts = self._run(lambda: self.frame.select(*[_col(n).alias(f"c{i}") for i, n in enumerate(names)])
                          .mapInPandas(_partition_counter(names, plan), "i int, payload string").collect())
        out: dict[str, Any] = {name: drift.numeric_counts({}, [], np.asarray(plan[name][1], dtype=float))
                               if plan[name][0] == "numeric" else drift.category_counts([], plan[name][1])
                               for name in names}
        for row in parts:
            name, payload = names[row["i"]], json.loads(row["payload"])
            if plan[name][0] == "numeric":
                out[name] = out[name] + drift.NumericCounts(
                    payload["rows"], payload["missing"], payload["total"],
                    None if payload["below"] is None else np.asarray(payload["below"], dtype=np.int64),
                    None if payload["upto"] is None else np.asarray(payload["upto"], dtype=np.int64), payload["text"])
            else:
                kinds = [_key(v) for v in payload.get("kinds", [])]
                out[name] = out[name] + drift.CategoryCounts(
                    payload["rows"], payload["missing"], {_key(v): c for v, c in payload["values"]},
                    frozenset(plan[name][1]), payload.get("folded", 0), {drift.value_kind(v): v for v in kinds})
        if progress is not None:
            progress(total, total, "window rows counted")
        return out

    # --- live metrics ----------------------------------------------------------------------------

    def labelled(self, labels: Any, target: str, delay_hours: float, now: datetime | None, policy: "Policy",
                 profile: dict[str, Any], live_policy: "Policy") -> tuple[dict[str, Any], dict[str, Any] | None]:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        table = _guarded(lambda: engine.read_source(self.spark, str(labels), role="labels",
                                                    hint="labels are a table with request_id and the target"))
        names = list(table.columns)
        local.check_label_columns(names, target, self.columns, self.source)
        count = int(self._run(lambda: table.count(), f"labels {labels!r}"))
        if count == 0:
            return {"labels": 0, "joined": 0, "unmatched": 0}, None
        keys = local.join_keys(names, self.columns)
        key_types = {windows.REQUEST_ID: "string", windows.RECORD: "long"}
        ids = self.everything.select(_col(windows.REQUEST_ID).cast("string").alias(f"{_P}id")).distinct()
        label_ids = table.select(_col(windows.REQUEST_ID).cast("string").alias(f"{_P}id"))
        matched = int(self._run(lambda: label_ids.join(ids, f"{_P}id", "left_semi").count()))
        if matched == 0:
            raise local.no_label_matches(count, label_ids.first()[0], self.source)
        from_labels = [c for c in policy.slices.columns if c in names]
        from_window = [c for c in policy.slices.columns if c in self.columns and c not in from_labels]
        left = self.frame.select(
            *[_col(k).cast(key_types[k]).alias(k) for k in keys],
            *[_col(c) for c in [windows.TIMESTAMP, windows.PREDICTION] if c in self.columns],
            *[_col(c) for c in from_window])
        right = table.select(*[_col(k).cast(key_types[k]).alias(k) for k in keys], _col(target),
                             *[_col(c) for c in from_labels])
        joined = left.join(right, keys, "inner")
        eligible_rows = self.count()
        if delay_hours and windows.TIMESTAMP in self.columns:
            cutoff = (now or datetime.now(timezone.utc)) - timedelta(hours=delay_hours)
            eligible = F.sum(F.when(_col(windows.TIMESTAMP).cast("timestamp") <= F.lit(cutoff), 1).otherwise(0))
            eligible_rows = int(self._run(lambda: self.frame.agg(eligible.alias("e")).first()["e"]) or 0)
        persisted = joined.select(_col(windows.PREDICTION), _col(target), *[_col(c) for c in from_labels + from_window]) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        try:
            joined_rows = int(self._run(lambda: persisted.count()))
            info = local.label_info(count, joined_rows, count - matched, eligible_rows)
            if not joined_rows:
                return info, None
            return info, self._live_results(persisted, live_policy, profile, target, from_labels + from_window)
        finally:
            persisted.unpersist()

    def _live_results(self, frame: "DataFrame", live_policy: "Policy", profile: dict[str, Any], target: str,
                      slice_columns: list[str]) -> dict[str, Any]:
        """The gate's Spark aggregation of the labelled rows: overall, every slice column and declared
        intersection present, with the local engine's slice text (Arrow's text of each value)."""
        from pyspark.sql import functions as F

        from model_lifecycle.core.verdict import serialise_results

        present = [c for c in live_policy.slices.columns if c in slice_columns]
        intersections = [list(c) for c in live_policy.slices.intersections if all(x in present for x in c)]
        policy = live_policy.model_copy(update={"slices": live_policy.slices.model_copy(
            update={"columns": present, "intersections": intersections})})
        schema = frame.schema
        y_type, p_type = schema[target].dataType, schema[windows.PREDICTION].dataType
        classes = profile.get("classes")
        guess_classes = policy.task == "binary" and not (classes and len(classes) == 2)  # the labels' values then
        stats = self._run(lambda: frame.agg(
            *[F.collect_set(_col(c)).alias(f"s{i}") for i, c in enumerate(present)],
            (F.collect_set(_col(target)) if guess_classes else F.lit(None)).alias("y"),
            F.sum(F.when(_col(windows.PREDICTION).isin(0.0, 1.0), 0).otherwise(1)).alias("other")
            if self.floating_of(p_type) else F.lit(0).alias("other"),
        ).toArrow())
        text_columns = {c: f"{_P}s{i}" for i, c in enumerate(present)}
        scored = frame.select("*", *[engine._slice_text(frame, c, stats.column(f"s{i}").combine_chunks().flatten(),
                                                        _arrow_text).alias(text_columns[c])
                                     for i, c in enumerate(present)])
        y_values = stats.column("y")[0].as_py() or []
        scores = local.serves_scores(policy.task, classes, self.floating_of(p_type),
                                     lambda: stats.column("other")[0].as_py() > 0)
        terms = _live_terms(policy.task, classes, y_values, _col(target), y_type, _col(windows.PREDICTION), p_type,
                            scores)
        combos = engine._combos(policy, text_columns)
        keys = list(dict.fromkeys(t for combo in combos for t in combo.texts))
        grouped = self._run(lambda: engine._grouped(scored, keys, combos, engine._aggregates(policy, [terms])))
        total = int(grouped[0][0][1]["n"])
        rank_sums = self._run(lambda: engine._rank_sums(scored, keys, combos, [(0, terms)], total)) \
            if "score" in terms else {}
        confusion = self._run(lambda: engine._confusion(scored, keys, combos, terms)) if "truth" in terms else {}
        return serialise_results(engine._results(policy, combos, grouped, "m0_", confusion, rank_sums.get(0, {})))

    @staticmethod
    def floating_of(dtype: Any) -> bool:
        from pyspark.sql import types as T

        return isinstance(dtype, (T.FloatType, T.DoubleType))

    # --- shadow ----------------------------------------------------------------------------------

    def shadow(self, slice_columns: list[str]) -> dict[str, Any]:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        present = [c for c in slice_columns if c in self.columns]
        rows = self.frame.where(_col(windows.SHADOW).isNotNull() & ~(
            F.isnan(_col(windows.SHADOW)) if self.floating(windows.SHADOW) else F.lit(False)))
        values = self._run(lambda: rows.agg(*[F.collect_set(_col(c)).alias(f"s{i}")
                                              for i, c in enumerate(present)]).toArrow()) if present else None
        text_columns = {c: f"{_P}s{i}" for i, c in enumerate(present)}
        numeric = all(isinstance(rows.schema[c].dataType, (T.NumericType, T.BooleanType))
                      for c in (windows.PREDICTION, windows.SHADOW))
        kind = "double" if numeric else "string"  # local.same_prediction's comparison
        same = _col(windows.PREDICTION).cast(kind) == _col(windows.SHADOW).cast(kind)
        agree = F.when(same, 1).otherwise(0)
        scored = rows.select(agree.alias(f"{_P}agree"), *[
            engine._slice_text(rows, c, values.column(f"s{i}").combine_chunks().flatten(), _arrow_text)
            .alias(text_columns[c]) for i, c in enumerate(present)])
        combos = [engine._Combo([], [])] + [engine._Combo([c], [text_columns[c]]) for c in present]
        grouped = self._run(lambda: engine._grouped(scored, list(text_columns.values()), combos, [
            F.count(F.lit(1)).alias("n"), F.sum(f"{_P}agree").alias("agree")]))
        overall = grouped.get(0, [((), {"n": 0, "agree": 0})])[0][1]
        by_slice = {}
        for index, combo in enumerate(combos[1:], start=1):
            for values_, row in grouped.get(index, []):
                by_slice[slice_key(dict(zip(combo.columns, values_)))] = (int(row["n"]), int(row["agree"] or 0))
        return {"rows": int(overall["n"]), "agree": int(overall["agree"] or 0), "by_slice": by_slice}

    # --- failures --------------------------------------------------------------------------------

    def _run(self, action: Any, what: str | None = None) -> Any:
        """A Spark action on the window (or on ``what``): a broken file or a type clash is the input's
        fault (exit 2); Spark itself failing, or its Python workers (numpy or pandas missing on a
        cluster), is a service error (exit 3)."""
        from model_lifecycle.errors import ServiceError

        try:
            return action()
        except ToolkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - py4j and the JVM raise many kinds
            if engine._spark_down(exc):
                raise engine._spark_failure(exc, JUDGING) from exc
            if engine._python_failure(exc):
                raise ServiceError(f"Spark's Python workers failed judging the window: {engine._python_error(exc)}",
                                   hint="the workers need numpy and pandas (and pyarrow)") from exc
            raise BadInput(f"{what or f'window {self.source!r}'} could not be read: {engine._first_line(exc)}") \
                from exc


def _ship_by_value(cloudpickle: Any) -> None:
    """Ship the ``drift`` module with the partition function (once per process, never undone: a
    registration is process-wide, so undoing it could race another thread's pickling)."""
    module = sys.modules[drift.__name__]
    if drift.__name__ not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(module)


def _guarded(action: Any) -> Any:
    try:
        return action()
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001
        if engine._spark_down(exc):
            raise engine._spark_failure(exc, JUDGING) from exc
        raise


def _key(value: Any) -> Any:
    """A category value back from a partition's JSON (``_partition_counter``'s ``plain``)."""
    if isinstance(value, dict) and "timestamp" in value:
        import pandas as pd

        return pd.Timestamp(value["timestamp"])
    return tuple(value) if isinstance(value, list) else value


def _arrow_text(values: Any) -> Any:
    """The local engine's text of a labelled row's slice value: Arrow's cast to string."""
    import pandas as pd
    import pyarrow as pa

    return pd.Series(values.cast(pa.string()).to_pylist(), dtype=object)


def _live_terms(task: str, classes: list[Any] | None, y_values: list[Any], y: "Column", y_type: Any, p: "Column",
                p_type: Any, scores: bool) -> dict[str, "Column"]:
    """The row terms ``spark._aggregates`` reads, for served predictions (``local.live_predictions``'s
    meaning): values for a regressor; for a binary classifier serving probabilities, the score and the
    label it stands for (the second class at 0.5 or above); else labels, as the model's integer
    classes when the capture holds them as floats."""
    from pyspark.sql import functions as F

    infinite = float("inf")
    if task == "regression":
        value = p.cast("double")
        error = value - y.cast("double")
        return {"mae": F.abs(error), "mse": error * error, "y": y.cast("double"), "checked": value,
                "bad": value.isNull() | F.isnan(value) | (F.abs(value) == infinite)}
    if task == "binary":
        known = classes if classes and len(classes) == 2 else None
        if known is None:  # evaluation._positive's rule without the model's classes
            values = set(y_values)
            known = [0, 1] if values <= {0, 1} else [None, sorted(values)[-1]]
        negative, positive_class = (F.lit(c).cast(y_type) for c in known)
        positive = F.when(y == positive_class, 1.0).otherwise(0.0)
        if scores:
            score = p.cast("double")
            high = score >= 0.5
            s = F.least(F.greatest(score, F.lit(engine._EPS)), F.lit(1 - engine._EPS))
            return {"accuracy": F.when(F.when(high, y == positive_class).otherwise(y == negative), 1.0).otherwise(0.0),
                    "log_loss": -(positive * F.log(s) + (1 - positive) * F.log(1 - s)),
                    "brier": (s - positive) * (s - positive), "positive": positive,
                    "guessed": F.when(high, 1.0).otherwise(0.0), "score": score, "checked": score,
                    "bad": score.isNull() | F.isnan(score) | (F.abs(score) == infinite)}
        label = _as_classes(p, p_type, classes)
        return {"accuracy": F.when(label == y, 1.0).otherwise(0.0), "positive": positive,
                "guessed": F.when(label == positive_class, 1.0).otherwise(0.0), "bad": label.isNull()}
    label = _as_classes(p, p_type, classes)
    return {"accuracy": F.when(label == y, 1.0).otherwise(0.0), "truth": y.cast("string"),
            "predicted": label.cast("string"), "bad": label.isNull()}


def _as_classes(p: "Column", p_type: Any, classes: list[Any] | None) -> "Column":
    """Labels captured as floats (1.0) as the model's integer classes, as ``local.live_predictions``."""
    if classes and all(type(c) is int for c in classes) and SparkReader.floating_of(p_type):
        return p.cast("long")
    return p


def _partition_counter(names: list[str], plan: dict[str, tuple[str, list[Any] | None]]) -> Any:
    """The function each partition runs: per column, the local engine's counts as JSON (small: the
    split points' counts, or each distinct category's, at most ``drift.CATEGORY_CAP`` besides the
    reference's). ``plan``: per column, ("numeric", split points) or ("categorical", its categories)."""
    cuts = {name: (kind, np.asarray(cut, dtype=float) if kind == "numeric" else cut) for name, (kind, cut) in plan.items()}

    def plain(value: Any) -> Any:
        """JSON of a category value; a timestamp stays one (its text is decided with the column's)."""
        import datetime

        import pandas as pd

        if isinstance(value, (np.datetime64, datetime.datetime)):
            return {"timestamp": pd.Timestamp(value).isoformat()}
        return value.item() if isinstance(value, np.generic) else value

    def count(batches: Any) -> Any:
        import json as _json

        import pandas as pd

        totals: dict[int, Any] = {}
        for batch in batches:
            for i, name in enumerate(names):
                kind, cut = cuts[name]
                values = batch[f"c{i}"].to_numpy()
                if kind == "numeric":
                    part = drift.numeric_counts({}, values, cut)
                else:
                    part = drift.category_counts(values, cut)
                totals[i] = part if i not in totals else totals[i] + part
        out = []
        for i, part in totals.items():
            if isinstance(part, drift.NumericCounts):
                payload = {"rows": part.rows, "missing": part.missing, "total": part.total, "text": part.text,
                           "below": None if part.below is None else part.below.tolist(),
                           "upto": None if part.upto is None else part.upto.tolist()}
            else:
                payload = {"rows": part.rows, "missing": part.missing,
                           "values": [[plain(k), v] for k, v in (part.values or {}).items()],
                           "folded": part.folded, "kinds": [plain(v) for v in (part.kinds or {}).values()]}
            out.append((i, _json.dumps(payload, default=str)))
        yield pd.DataFrame(out, columns=["i", "payload"])

    return count
