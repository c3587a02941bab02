"""The Spark engine: the hold-out evaluated where it lives, with the local engine's meaning.

``evaluate_holdout`` reads the hold-out with Spark (Parquet or CSV files, a folder, a glob, any URI
Spark reads, or ``table:<name>`` in the Spark catalog), predicts with ``mlflow.pyfunc.spark_udf``
and aggregates the metrics overall and per slice in Spark. It returns an ``evaluation.Streamed``
whose results equal the local engine's (``evaluation.evaluate_rows``) up to float rounding, so the
verdict, the report and the evaluation run are built from it unchanged.

How each quantity is computed (the local engine's definitions, from aggregated statistics):

* scores: the local engine scores a scikit-learn classifier with the flavour's ``predict_proba`` and
  takes its label as the class of highest probability. ``spark_udf`` serves the pyfunc's
  ``predict_fn`` (``predict``: labels), so for such a model the engine serves a private copy of the
  downloaded model whose pyfunc ``predict_fn`` is ``predict_proba`` (what ``log_model(...,
  pyfunc_predict_fn="predict_proba")`` records): the same function on the same rows. Other pyfunc
  classifiers give labels only, as in the local engine (no roc_auc, log_loss or brier).
* mean metrics (accuracy, log_loss, brier, mae, mse, rmse): ``avg`` and ``stddev_samp`` of the
  per-row terms (Spark's numerically stable moments), the same normal interval (delta method for
  rmse); precision, recall, f1: confusion counts, binomial intervals; f1_macro/f1_weighted: the
  confusion matrix per slice; r2: the sum of squared errors over ``var_samp`` of the target.
* roc_auc: the Mann-Whitney rank sum with average ranks for ties (equal to the trapezoidal ROC
  area scikit-learn computes), exact and distributed: rows are range-partitioned by score (ties
  never straddle two partitions), each partition counts per slice, and the driver adds each
  partition's count of negatives below; Hanley-McNeil interval.
* slices: the local engine's text of a slice value (pandas ``astype(str)``; missing values belong
  to no slice) and ``evaluation.slice_key``; one ``GROUPING SETS`` aggregation gives overall, every
  slice column and every declared intersection.

What differs: ``y`` is None and ``groups`` empty (nothing per row reaches the driver), so the
statistical modes' paired intervals are refused (use the local engine); the digest is Spark's own
(``DIGEST``); the uniform sample for the reference profile is Spark's Bernoulli sample.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_lifecycle import settings
from model_lifecycle.core import evaluation
from model_lifecycle.core.evaluation import OVERALL, Evaluated, LoadedModel, ModelFault, Predictions, SliceResult
from model_lifecycle.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from model_lifecycle.core.policy import Policy

TABLE_PREFIX = "table:"
DIGEST = ("spark-row-hashes: sha256 of the column names and Spark types, the row count, and the sums and "
          "xor of every row's xxhash64 (values and null flags); independent of row order and files")
_EPS = 1e-15  # the local engine's clipping of probabilities (evaluation.per_row)
_P = "__lifecycle_"  # prefix of the engine's own columns
_HEAD_ROWS = 1000  # rows the signature check reads, as the local engine's per batch
_ARROW_BATCH_ROWS = 100_000  # rows per Arrow batch to spark_udf (Spark's default: 10,000)
_CACHED_CELLS = 10_000_000  # rows x columns of a hold-out cached whole (its sample is then every row)
_RANK_ROWS = 2_000_000  # rows per partition at most when ranking scores (each partition is one pandas frame)


# --- the session ---------------------------------------------------------------------------------


def session(master: str | None = None) -> "SparkSession":
    """The running Spark session, else a new one on ``master`` (``LIFECYCLE_SPARK_MASTER``, else
    Spark's own default: spark-submit's ``--master`` or spark-defaults.conf, else ``local[*]``).

    A local session runs its Python workers with this interpreter (``spark.pyspark.python``), so they
    load models with the same libraries; a cluster brings its own."""
    _quiet_pyspark_warnings()
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if SparkContext._active_spark_context is not None:
        return SparkSession.builder.getOrCreate()
    master = master or settings.SPARK_MASTER.get()
    builder = SparkSession.builder.appName("model-lifecycle evaluation")
    if master:
        builder = builder.master(master)
        effective = master
    else:
        SparkContext._ensure_initialized()  # the JVM: spark-submit's and spark-defaults' properties
        effective = SparkConf().get("spark.master", "local[*]")
    if effective.startswith("local"):
        os.environ["PYSPARK_PYTHON"] = sys.executable
        builder = builder.config("spark.pyspark.python", sys.executable)
    # UTC: text and naive timestamps read as UTC, as pyarrow reads them in the local engine
    spark = builder.config("spark.ui.showConsoleProgress", "false").config("spark.sql.session.timeZone", "UTC") \
        .getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _quiet_pyspark_warnings() -> None:
    # PySpark 4.3 warns on every pandas UDF that it "does not yet fully support pandas >= 3.0.0"; the
    # conversions this engine uses are checked by the tests against the local engine.
    warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas.*", category=FutureWarning)


# --- the hold-out --------------------------------------------------------------------------------


def policy_source(policy_file: str | Path, policy: "Policy") -> str:
    """The policy's ``holdout.path`` as written when it is a ``table:`` name or a URI (``policy.load``
    resolves every path against the policy's folder, which suits files only), else as resolved."""
    import yaml

    try:
        raw = (yaml.safe_load(Path(policy_file).read_text(encoding="utf-8")) or {}).get("holdout", {}).get("path")
    except (OSError, yaml.YAMLError, AttributeError):
        raw = None
    if isinstance(raw, str) and (raw.startswith(TABLE_PREFIX) or "://" in raw):
        return raw
    return policy.holdout.path


def _what(source: str) -> str:
    if source.startswith(TABLE_PREFIX):
        return f"hold-out table {source[len(TABLE_PREFIX):]!r}"
    return f"hold-out file {source!r}"


def read_source(spark: "SparkSession", source: str, role: str = "hold-out",
                hint: str = "check holdout.path in the policy or --holdout") -> "DataFrame":
    """A DataFrame over the hold-out (or a window, or labels: ``role``): a catalog table, or
    Parquet/CSV files (a file, folder, glob or URI)."""
    from pyspark.sql import types as T

    if source.startswith(TABLE_PREFIX):
        name = source[len(TABLE_PREFIX):].strip()
        if not name:
            raise BadInput(f"{role} 'table:' names no table", hint="write table:<name>, e.g. table:ml.churn_holdout")
        try:
            exists = spark.catalog.tableExists(name)
            frame = spark.table(name) if exists else None
        except Exception as exc:  # noqa: BLE001 - a malformed name, an unreachable metastore
            raise BadInput(f"{role} table {name!r} could not be read: {_first_line(exc)}") from exc
        if frame is None:
            raise BadInput(f"{role} table {name!r} not found in the Spark catalog", hint=hint)
        return frame
    csv = _is_csv(source)
    try:
        if csv:
            frame = spark.read.option("header", True).option("inferSchema", True).csv(source)
            # pyarrow reads CSV integers as int64: so does the engine (the signature says long)
            small = (T.ByteType, T.ShortType, T.IntegerType)
            frame = frame.select(*[_col(f.name).cast("long").alias(f.name) if isinstance(f.dataType, small)
                                   else _col(f.name) for f in frame.schema.fields])
        else:
            frame = spark.read.parquet(source)
        frame.schema  # noqa: B018 - reads the files' metadata now: a missing or broken file is bad input here
    except Exception as exc:  # noqa: BLE001 - any read failure is the hold-out's
        if _condition(exc) == "PATH_NOT_FOUND":
            raise BadInput(f"{role} file {source!r} not found", hint=hint) from exc
        raise BadInput(f"{role} file {source!r} could not be read: {_first_line(exc)}", hint=hint) from exc
    return frame


def _is_csv(source: str) -> bool:
    if source.lower().endswith(".csv"):
        return True
    path = Path(source)
    if "://" not in source and path.is_dir():
        suffixes = {f.suffix.lower() for f in path.rglob("*") if f.is_file() and not f.name.startswith(("_", "."))}
        return ".csv" in suffixes and not suffixes & {".parquet", ".pq"}
    return False


# --- one model as Spark serves it ----------------------------------------------------------------


@dataclass
class _Served:
    """One model's prediction column in the scored frame and how to read it."""

    uri: str
    model: LoadedModel
    kind: str  # "proba": class probabilities (sklearn flavour); "label": served labels; "value": regression
    column: str
    features: list[str]
    folder: Path | None = None  # where the model was downloaded
    classes: list[Any] | None = None  # proba: the model's classes; label (binary): y's and labels' two values
    udf: Any = None  # the spark_udf serving it


def _serve(spark: "SparkSession", served: _Served, model_dir: Path, label_type: str) -> Any:
    """``mlflow.pyfunc.spark_udf`` over the downloaded model; for "proba", over a copy whose pyfunc
    ``predict_fn`` is ``predict_proba`` (as ``log_model(pyfunc_predict_fn="predict_proba")`` records)."""
    import mlflow
    from mlflow.models import Model

    if served.kind == "proba":
        info = Model.load(str(model_dir / "MLmodel"))
        pyfunc = (info.flavors or {}).get("python_function")
        if pyfunc is None:
            raise BadInput(f"model {served.uri!r} has no python_function flavour, which spark_udf serves",
                           hint="use the local engine (--engine local)")
        pyfunc["predict_fn"] = "predict_proba"
        info.save(str(model_dir / "MLmodel"))
    result_type = {"proba": "array<double>", "value": "double"}.get(served.kind, label_type)
    try:
        return mlflow.pyfunc.spark_udf(spark, str(model_dir), result_type=result_type, env_manager="local")
    except Exception as exc:  # noqa: BLE001 - no pyfunc flavour, an unsupported result type
        raise BadInput(f"model {served.uri!r} cannot be served by mlflow.pyfunc.spark_udf: {_first_line(exc)}",
                       hint="use the local engine (--engine local)") from exc


def _is_sklearn(root: Path) -> bool:
    from mlflow.models import Model

    try:
        return "sklearn" in (Model.load(str(_model_dir(root) / "MLmodel")).flavors or {})
    except Exception:  # noqa: BLE001 - unreadable: keep the files
        return False


def _model_dir(root: Path) -> Path:
    found = sorted(root.rglob("MLmodel"), key=lambda p: len(p.parts))
    if not found:
        raise BadInput(f"downloaded model in {root} has no MLmodel file")
    return found[0].parent


# --- evaluation ------------------------------------------------------------------------------------


def evaluate_holdout(
    policy: "Policy", uris: list[str], path: str | None = None, *, progress: Any = None,
    spark: "SparkSession | None" = None, sample_size: int = evaluation.SAMPLE_ROWS,
) -> evaluation.Streamed:
    """Every model on the hold-out, scored and aggregated in Spark: the local engine's results.

    Spark jobs: one scan of the source (count, target checks, digest, label and slice values), the
    scoring (cached) with every model's aggregates overall and per slice in one ``GROUPING SETS``
    pass, one range-partitioned pass for ROC AUC, the sample; multiclass adds a confusion count.
    Spark failing itself (out of memory, the cluster gone) is a service error (exit 3)."""
    from model_lifecycle.errors import ToolkitError

    spark = spark or session()
    try:
        with _arrow_batches(spark, _ARROW_BATCH_ROWS):
            return _evaluate(policy, uris, path, progress=progress, spark=spark, sample_size=sample_size)
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - py4j and the JVM raise many kinds
        if _spark_down(exc):
            raise _spark_failure(exc) from exc
        raise


@contextlib.contextmanager
def _arrow_batches(spark: "SparkSession", rows: int) -> Any:
    """Larger Arrow batches to the Python workers while evaluating (spark_udf's cost is largely per
    batch: 10,000 rows by default), then the session's own setting again."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key, None)
    if before is not None and int(before) >= rows:
        yield
        return
    spark.conf.set(key, str(rows))
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _evaluate(policy: "Policy", uris: list[str], path: str | None, *, progress: Any, spark: "SparkSession | None",
              sample_size: int) -> evaluation.Streamed:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    _refuse_paired_intervals(policy, uris)
    source = str(path or policy.holdout.path)
    spark = spark or session()
    _quiet_pyspark_warnings()
    target, slices = policy.holdout.target, list(dict.fromkeys(policy.slices.columns))
    frame = read_source(spark, source)
    names = frame.columns
    missing = [c for c in [target, *slices] if c not in names]
    if missing:
        role = "target" if missing[0] == target else "slice"
        raise BadInput(f"{_what(source)} has no {role} column {missing[0]!r}",
                       hint=f"columns are: {', '.join(map(str, names[:30]))}")
    if any(name.startswith(_P) for name in names):
        raise BadInput(f"{_what(source)} has columns starting with {_P!r}, which the spark engine uses itself")
    target_type = frame.schema[target].dataType
    if policy.task == "regression" and not isinstance(target_type, T.NumericType):
        raise BadInput(f"hold-out column {target!r} is {target_type.simpleString()}, not numeric: a regressor's "
                       "target must be a number")
    scan = _scan(frame, source, target, target_type, slices, policy.task != "regression")
    total = scan.rows
    if progress is not None:
        progress(0, total, "hold-out rows evaluated")

    work = Path(tempfile.mkdtemp(prefix="spark-models-"))
    served: list[_Served] = []
    persisted = None
    try:
        head = frame.limit(_HEAD_ROWS).toArrow().to_pandas()
        label_type = _label_type(target_type, policy.task)
        for index, uri in enumerate(uris):
            folder = work / f"model-{index}"
            folder.mkdir()
            model = evaluation.load_model(uri, download_dir=str(folder))
            features = list(evaluation.feature_frame(model, head, target, policy.checks.require_signature).columns)
            one = _Served(uri, model, _kind(model, policy.task), f"{_P}p{index}", features, folder=folder)
            if one.kind == "proba":
                one.classes = list(model.classes or [])
            if model.classes is not None:
                _check_classes(one, policy.task, scan.y_values)
            one.udf = _serve(spark, one, _model_dir(folder), label_type)
            served.append(one)

        text_columns = {column: f"{_P}s{i}" for i, column in enumerate(slices)}
        predicted = [s.udf(F.struct(*[_col(c) for c in s.features])).alias(s.column) for s in served]
        scored = frame.select("*", *predicted,
                              *[_slice_text(frame, c, scan.slice_values[c]).alias(text_columns[c]) for c in slices])
        # Cached: what the metrics read. The whole rows too when they are the sample and few (a wide or
        # long hold-out cached whole exhausts a default 1 GB driver); else the sample is predicted again.
        whole = 0 < total <= sample_size and total * len(names) <= _CACHED_CELLS
        if not whole:
            scored = scored.select(_col(target), *[_col(s.column) for s in served], *map(_col, text_columns.values()))
        persisted = scored.persist(StorageLevel.MEMORY_AND_DISK)
        labelled = [s for s in served if s.kind == "label" and policy.task == "binary"]
        if labelled:  # a labels-only binary classifier's classes come from its labels (evaluation._concat)
            found = _predicting(frame, served, total, lambda: persisted.agg(
                *[F.collect_set(_col(s.column)).alias(s.column) for s in labelled]).first())
            for one in labelled:
                one.classes = _label_classes(one, policy.task, scan.y_values, list(found[one.column]))
        combos = _combos(policy, text_columns)
        keys = list(dict.fromkeys(t for combo in combos for t in combo.texts))
        terms = {s.uri: _row_terms(policy, s, target, target_type, scan.y_values) for s in served}
        stats = _predicting(frame, served, total,
                            lambda: _grouped(persisted, keys, combos, _aggregates(policy, [terms[s.uri] for s in served])))
        _check_predictions(policy, frame, served, stats[0][0][1], total)
        rank_sums = _rank_sums(persisted, keys, combos, [(i, terms[s.uri]) for i, s in enumerate(served)
                                                        if "score" in terms[s.uri]], total)
        results = {}
        for i, one in enumerate(served):
            confusion = _confusion(persisted, keys, combos, terms[one.uri]) if "truth" in terms[one.uri] else {}
            results[one.uri] = _results(policy, combos, stats, f"m{i}_", confusion, rank_sums.get(i, {}))
        sample, predictions = _sample(persisted if whole else frame, None if whole else predicted, names, served,
                                      total, sample_size, policy.task)
    finally:
        if persisted is not None:
            persisted.unpersist()
        # a scikit-learn model is in memory; another pyfunc may read its files later (evaluation.load_model)
        kept = [one for one in served if one.folder is not None and not _is_sklearn(one.folder)]
        for one in served:
            if one not in kept and one.folder is not None:
                shutil.rmtree(one.folder, ignore_errors=True)
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
    evaluated = {s.uri: Evaluated(s.model, predictions[s.uri], results[s.uri]) for s in served}
    info = {"path": source, "rows": total, "sha256": scan.digest, "digest": DIGEST, "engine": "spark"}
    if progress is not None:
        progress(total, total, "hold-out rows evaluated")
    # y None and no row positions: nothing per row reaches the driver (see the module's docstring)
    return evaluation.Streamed(None, {}, info, evaluated, sample, np.arange(len(sample)))  # type: ignore[arg-type]


def _refuse_paired_intervals(policy: "Policy", uris: list[str]) -> None:
    """The statistical modes need each row's paired difference of candidate and champion (or a
    paired bootstrap over rows): the local engine computes them, this one does not."""
    mode = policy.statistics.mode
    if mode != "point" and len(uris) > 1 and any("improvement" in gate.rule_kinds() for gate in policy.gates):
        raise BadInput(
            f"statistics.mode {mode!r} needs each row's paired difference between candidate and champion "
            "(paired intervals of the improvement), which the spark engine does not compute",
            hint="use the local engine (--engine local), or statistics.mode: point",
        )


@dataclass
class _Scan:
    rows: int
    digest: str
    y_values: list[Any]  # a classifier's target values
    slice_values: dict[str, Any]  # slice column -> its distinct non-null values (a pyarrow array)


def _scan(frame: "DataFrame", source: str, target: str, target_type: Any, slices: list[str],
          classify: bool) -> _Scan:
    """One pass over the source: rows, missing or infinite targets (as the local engine counts them),
    the digest, a classifier's target values and every slice column's values."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    y = _col(target)
    floating = isinstance(target_type, (T.FloatType, T.DoubleType))
    hashable = [f.name for f in frame.schema.fields if not isinstance(f.dataType, T.MapType)]
    row_hash = F.xxhash64(*[_col(c) for c in hashable], *[_col(c).isNull() for c in frame.columns])
    aggregates = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(y.isNull() | (F.isnan(y) if floating else F.lit(False)), 1).otherwise(0)).alias("missing"),
        F.sum(F.when(F.abs(y) == float("inf"), 1).otherwise(0) if floating else F.lit(0)).alias("infinite"),
        F.sum(row_hash.bitwiseAND(F.lit(0xFFFFFFFF))).alias("low"),
        F.sum(F.shiftrightunsigned(row_hash, 32)).alias("high"),
        F.bit_xor(row_hash).alias("xor"),
    ]
    if classify:
        aggregates.append(F.collect_set(y).alias("y_values"))
    for i, column in enumerate(slices):
        aggregates.append(F.collect_set(_col(column)).alias(f"slice{i}"))  # without nulls: in no slice
    try:
        table = frame.agg(*aggregates).toArrow()
    except Exception as exc:  # noqa: BLE001 - a broken or mistyped file shows on the first full read
        if _spark_down(exc):
            raise _spark_failure(exc) from exc
        raise BadInput(f"{_what(source)} could not be read: {_first_line(exc)}") from exc
    stats = {name: table.column(name)[0].as_py() for name in ("rows", "missing", "infinite", "low", "high", "xor")}
    rows = int(stats["rows"])
    if rows == 0:
        raise BadInput(f"{_what(source)} has no rows")
    if stats["missing"]:
        raise BadInput(f"hold-out column {target!r} has {int(stats['missing'])} missing target values")
    if stats["infinite"]:
        raise BadInput(f"hold-out column {target!r} has {int(stats['infinite'])} infinite target values")
    schema = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    text = json.dumps({"schema": schema, "rows": rows, "low": int(stats["low"] or 0), "high": int(stats["high"] or 0),
                       "xor": int(stats["xor"] or 0)}, sort_keys=True)
    values = {column: table.column(f"slice{i}").combine_chunks().flatten() for i, column in enumerate(slices)}
    y_values = table.column("y_values")[0].as_py() if classify else []
    return _Scan(rows, "sha256:" + hashlib.sha256(text.encode()).hexdigest(), y_values, values)


def _kind(model: LoadedModel, task: str) -> str:
    if task == "regression":
        return "value"
    return "proba" if model.proba_fn is not None else "label"


def _label_type(target_type: Any, task: str) -> str:
    """The Spark type of served labels: the target's (so that label == y compares like numpy does)."""
    from pyspark.sql import types as T

    if task == "regression" or isinstance(target_type, T.StringType):
        return "string"
    if isinstance(target_type, T.BooleanType):
        return "boolean"
    if isinstance(target_type, T.IntegralType):
        return "long"
    return "double"


def _check_classes(one: _Served, task: str, y_values: list[Any]) -> None:
    """As ``evaluation.predict``: labels the model never saw are bad input."""
    known = [evaluation._plain(c) for c in (one.model.classes or [])]
    unseen = sorted({evaluation._plain(v) for v in y_values} - set(known), key=str)
    if unseen:
        raise BadInput(f"hold-out has labels the model {one.uri!r} never saw: {unseen[:5]}",
                       hint=f"the model knows {known[:10]}")
    if one.kind == "proba" and task == "binary" and len(known) != 2:
        raise BadInput(f"model {one.uri!r} has {len(known)} classes, not two: a binary policy needs a binary "
                       "classifier for the spark engine", hint="use the local engine (--engine local)")


def _label_classes(one: _Served, task: str, y_values: list[Any], labels: list[Any]) -> list[Any] | None:
    """The local engine's classes of a labels-only classifier: both values of y and labels, sorted as
    text, when there are two (the positive class is the second); a binary policy with any other
    number is refused, since the local engine's per-slice fallback has no aggregate form."""
    if task != "binary":
        return None
    known = sorted(set(y_values) | set(labels), key=str)
    if len(known) != 2:
        raise BadInput(f"hold-out and the labels of model {one.uri!r} hold {len(known)} classes, not two: the spark "
                       "engine needs a binary classifier's two classes", hint="use the local engine (--engine local)")
    return known


def _index_of(value: Any, classes: list[Any] | None) -> int:
    plain = [evaluation._plain(c) for c in classes or []]
    return plain.index(evaluation._plain(value))


def _slice_text(frame: "DataFrame", column: str, values: Any, text_of: Any = None) -> "Column":
    """The local engine's text of each value of a slice column: pandas ``astype(str)`` of the values
    as pyarrow gives them (``3``, ``0.5``, ``True``, ``eu``); missing values (null, NaN) have no text:
    in no slice, as there. Integers stay integers even when some are missing (the local engine writes
    ``3.0`` for a batch where pandas reads such a column as floats)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    raw = values.to_pylist()
    text = text_of(values) if text_of is not None else values.to_pandas().astype(str)
    mapping: dict[Any, str] = {}
    for value, shown in zip(raw, text.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)) or not isinstance(shown, str):
            continue
        mapping[value] = shown
    dtype = frame.schema[column].dataType
    if not mapping:
        return F.lit(None).cast("string")
    if len(mapping) == 1:
        value, shown = next(iter(mapping.items()))
        return F.when(_col(column) == F.lit(value).cast(dtype), F.lit(shown))
    pairs = [item for value, shown in mapping.items() for item in (F.lit(value).cast(dtype), F.lit(shown))]
    lookup = F.create_map(*pairs)[_col(column)]
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        return F.when(F.isnan(_col(column)), F.lit(None).cast("string")).otherwise(lookup)
    return lookup


def _predicting(frame: "DataFrame", served: list[_Served], total: int, action: Any) -> Any:
    """Run a Spark action that predicts: a model failing in the Python workers is the model's fault
    (exit 1), unless the features it reads hold NaN or infinite values (bad input, as locally)."""
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - Spark wraps the worker's error
        if _spark_down(exc):
            raise _spark_failure(exc) from exc
        if not _python_failure(exc):
            raise BadInput(f"the spark engine failed on the hold-out: {_first_line(exc)}") from exc
        culprit = _failing_model(frame, served) or served[0]
        raise _nonfinite_input(frame, culprit, total) or ModelFault(
            f"model {culprit.uri!r} failed to predict on the hold-out: {_python_error(exc)}") from exc


def _check_predictions(policy: "Policy", frame: "DataFrame", served: list[_Served], overall: dict[str, Any],
                       total: int) -> None:
    """As the local engine: non-finite predictions are the model's fault unless the features it
    read hold NaN or infinite values (bad input); then ``checks.prediction_range``."""
    for i, one in enumerate(served):
        if overall[f"m{i}_bad"]:
            raise _nonfinite_input(frame, one, total) or ModelFault(
                f"model {one.uri!r} predicted {int(overall[f'm{i}_bad'])} NaN or infinite values on the hold-out")
    if policy.checks.prediction_range is None:
        return
    low_bound, high_bound = policy.checks.prediction_range
    for i, one in enumerate(served):
        low, high = overall.get(f"m{i}_low"), overall.get(f"m{i}_high")
        if low is not None and (low < low_bound or high > high_bound):
            raise ModelFault(
                f"model {one.uri!r} predicted values outside checks.prediction_range [{low_bound:g}, {high_bound:g}]: "
                f"min {low:.4g}, max {high:.4g}")


def _failing_model(frame: "DataFrame", served: list[_Served]) -> _Served | None:
    """Which model's predictions fail (asked only after a failure: each model predicts alone)."""
    from pyspark.sql import functions as F

    if len(served) == 1:
        return served[0]
    for one in served:
        try:
            frame.select(one.udf(F.struct(*[_col(c) for c in one.features])).alias("p")).agg(F.count("p")).first()
        except Exception as exc:  # noqa: BLE001
            return one if _python_failure(exc) and not _spark_down(exc) else None
    return None


def _nonfinite_input(frame: "DataFrame", one: _Served, total: int) -> BadInput | None:
    """The local engine's ``_nonfinite_input``, counted in Spark over the features the model reads."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    checks = []
    for name in one.features:
        dtype = frame.schema[name].dataType
        bad = _col(name).isNull()
        if isinstance(dtype, (T.FloatType, T.DoubleType)):
            bad = bad | F.isnan(_col(name)) | (F.abs(_col(name)) == float("inf"))
        checks.append(F.sum(F.when(bad, 1).otherwise(0)).alias(name))
    counts = frame.agg(*checks).first().asDict() if checks else {}
    found = [(name, int(counts[name])) for name in one.features if counts.get(name)]
    return evaluation.nonfinite_error(one.uri, found, total)


# --- metrics by slice ------------------------------------------------------------------------------


@dataclass
class _Combo:
    columns: list[str]  # hold-out slice columns, as declared
    texts: list[str]  # the engine's text columns for them


def _combos(policy: "Policy", text_columns: dict[str, str]) -> list[_Combo]:
    """Overall, every slice column, every declared intersection: the local engine's order."""
    declared = [[c] for c in policy.slices.columns] + [list(c) for c in policy.slices.intersections]
    return [_Combo([], [])] + [_Combo(combo, [text_columns[c] for c in combo]) for combo in declared]


def _row_terms(policy: "Policy", one: _Served, target: str, target_type: Any,
               y_values: list[Any]) -> dict[str, "Column"]:
    """The per-row terms of the local engine's ``per_row``, the confusion indicators, and the
    prediction checks (``bad``: not finite; ``checked``: the values ``checks.prediction_range`` reads)."""
    from pyspark.sql import functions as F

    y, p = _col(target), _col(one.column)
    infinite = float("inf")
    terms: dict[str, Column] = {}
    if one.kind == "value":
        error = p - y.cast("double")
        terms.update(mae=F.abs(error), mse=error * error, y=y.cast("double"), checked=p,
                     bad=p.isNull() | F.isnan(p) | (F.abs(p) == infinite))
        return terms
    if one.kind == "proba":
        index = {value: _index_of(value, one.classes) for value in y_values}
        pairs = [item for value, i in index.items() for item in (F.lit(value).cast(target_type), F.lit(i))]
        truth = F.create_map(*pairs)[y]
        predicted = F.array_position(p, F.array_max(p)) - 1  # the first largest, as numpy's argmax
        terms["accuracy"] = F.when(predicted == truth, 1.0).otherwise(0.0)
        terms["bad"] = p.isNull() | F.exists(p, lambda x: F.isnan(x) | (F.abs(x) == infinite))
        if policy.task == "binary":
            score = F.element_at(p, 2)
            positive, guessed = F.when(truth == 1, 1.0).otherwise(0.0), F.when(predicted == 1, 1.0).otherwise(0.0)
            s = F.least(F.greatest(score, F.lit(_EPS)), F.lit(1 - _EPS))
            terms.update(log_loss=-(positive * F.log(s) + (1 - positive) * F.log(1 - s)),
                         brier=(s - positive) * (s - positive), positive=positive, guessed=guessed,
                         score=score, checked=score)
        else:
            chosen = F.least(F.greatest(F.element_at(p, (truth + 1).cast("int")), F.lit(_EPS)), F.lit(1.0))
            terms.update(log_loss=-F.log(chosen), truth=truth.cast("string"), predicted=predicted.cast("string"),
                         checked_low=F.array_min(p), checked_high=F.array_max(p))
        return terms
    terms["accuracy"] = F.when(p == y, 1.0).otherwise(0.0)
    terms["bad"] = p.isNull() | ((F.isnan(p) | (F.abs(p) == infinite)) if _label_type(target_type, policy.task)
                                 == "double" else F.lit(False))
    if policy.task == "binary":
        positive_class = F.lit(one.classes[1]).cast(target_type)
        terms.update(positive=F.when(y == positive_class, 1.0).otherwise(0.0),
                     guessed=F.when(p == positive_class, 1.0).otherwise(0.0))
    else:
        terms.update(truth=y.cast("string"), predicted=p.cast("string"))
    return terms


_MEAN_TERMS = ("accuracy", "log_loss", "brier", "mae", "mse")


def _aggregates(policy: "Policy", terms: list[dict[str, "Column"]]) -> list["Column"]:
    """Every model's statistics of a slice (the i-th model's row terms), named ``m<i>_<statistic>``."""
    from pyspark.sql import functions as F

    aggregates = [F.count(F.lit(1)).alias("n")]
    for i, t in enumerate(terms):
        m = f"m{i}_"
        aggregates.append(F.sum(F.when(t["bad"], 1).otherwise(0)).alias(m + "bad"))
        if "checked" in t:
            aggregates += [F.min(t["checked"]).alias(m + "low"), F.max(t["checked"]).alias(m + "high")]
        elif "checked_low" in t:
            aggregates += [F.min(t["checked_low"]).alias(m + "low"), F.max(t["checked_high"]).alias(m + "high")]
        for name in _MEAN_TERMS:
            if name in t:
                aggregates += [F.avg(t[name]).alias(f"{m}{name}_mean"), F.stddev_samp(t[name]).alias(f"{m}{name}_std")]
        if "positive" in t:
            aggregates += [F.sum(t["positive"] * t["guessed"]).alias(m + "tp"), F.sum(t["guessed"]).alias(m + "pp"),
                           F.sum(t["positive"]).alias(m + "ap")]
        if "y" in t:
            aggregates += [F.sum(t["mse"]).alias(m + "sse"), F.var_samp(t["y"]).alias(m + "y_var")]
    return aggregates


def _results(policy: "Policy", combos: list[_Combo], stats: dict[int, list[tuple[tuple[str, ...], dict[str, Any]]]],
             prefix: str, confusion: dict[tuple[int, tuple[str, ...]], dict[tuple[str, str], int]],
             rank_sums: dict[tuple[int, tuple[str, ...]], tuple[int, int, float]]) -> dict[str, SliceResult]:
    """One model's ``SliceResult`` per slice, in the local engine's order and with its definitions."""
    z = evaluation.z_for(policy.statistics.confidence)
    results: dict[str, SliceResult] = {}
    for combo_index, combo in enumerate(combos):
        for values, row in stats.get(combo_index, []):
            key = OVERALL if not combo.columns else evaluation.slice_key(dict(zip(combo.columns, values)))
            n = int(row["n"])
            result = SliceResult(key, n, key != OVERALL and n < policy.slices.min_size)
            if not result.insufficient:
                mine = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
                for metric in policy.metric_names():
                    value, ci = _metric(metric, policy.task, mine, n, z, confusion.get((combo_index, values)),
                                        rank_sums.get((combo_index, values)))
                    result.metrics[metric] = {"value": value, "ci_low": ci[0] if ci else None,
                                              "ci_high": ci[1] if ci else None}
            results[key] = result
    return results


def _grouped(scored: "DataFrame", keys: list[str], combos: list[_Combo], aggregates: list[Any],
             extra: list[str] | None = None) -> dict[int, list[tuple[tuple[str, ...], dict[str, Any]]]]:
    """One ``GROUPING SETS`` aggregation: per combo, its groups (text values, rows as dicts) in the
    local engine's order (sorted as text), without groups where a value is missing."""
    from pyspark.sql import functions as F

    extra = extra or []
    columns = [*keys, *extra]
    if columns:
        unique = list(dict.fromkeys(frozenset(combo.texts) for combo in combos))  # [a, b] and [b, a]: one set
        sets = [[_col(t) for t in keys if t in chosen] + [_col(e) for e in extra] for chosen in unique]
        grouped = scored.groupingSets(sets, *[_col(c) for c in columns])
        rows = grouped.agg(*aggregates, F.grouping_id().alias(f"{_P}gid")).collect()
    else:
        rows = scored.groupBy().agg(*aggregates).collect()
    width = len(columns)
    by_mask: dict[int, list[int]] = {}
    for index, combo in enumerate(combos):
        grouped_columns = {keys.index(t) for t in combo.texts} | set(range(len(keys), width))
        mask = sum(1 << (width - 1 - i) for i in range(width) if i not in grouped_columns)
        by_mask.setdefault(mask, []).append(index)
    out: dict[int, list[tuple[tuple[str, ...], dict[str, Any]]]] = {}
    for row in rows:
        record = row.asDict()
        for index in by_mask.get(int(record.pop(f"{_P}gid", 0)), []):
            values = tuple(record[t] for t in combos[index].texts)
            if any(v is None for v in values):
                continue
            out.setdefault(index, []).append((values, record))
    for groups in out.values():
        groups.sort(key=lambda item: item[0])
    return out


def _confusion(scored: "DataFrame", keys: list[str], combos: list[_Combo],
               terms: dict[str, "Column"]) -> dict[tuple[int, tuple[str, ...]], dict[tuple[str, str], int]]:
    """Per slice, the count of each (true class, predicted class): multiclass F1."""
    from pyspark.sql import functions as F

    truth, predicted = f"{_P}t", f"{_P}q"
    frame = scored.select(*[_col(k) for k in keys], terms["truth"].alias(truth), terms["predicted"].alias(predicted))
    stats = _grouped(frame, keys, combos, [F.count(F.lit(1)).alias("n")], extra=[truth, predicted])
    out: dict[tuple[int, tuple[str, ...]], dict[tuple[str, str], int]] = {}
    for index, groups in stats.items():
        for values, row in groups:
            out.setdefault((index, values), {})[(row[truth], row[predicted])] = int(row["n"])
    return out


def _rank_sums(scored: "DataFrame", keys: list[str], combos: list[_Combo],
               models: list[tuple[int, dict[str, "Column"]]],
               rows: int) -> dict[int, dict[tuple[int, tuple[str, ...]], tuple[int, int, float]]]:
    """Per model and slice (n1, n0, U): the Mann-Whitney U of the positives' scores over the
    negatives', ties counting one half (average ranks), exactly, for every binary model in one pass.

    Rows are range-partitioned by (model, score): every tie lies in one partition and, for each
    model, a partition's scores all exceed those of the partitions before it. Each partition gives,
    per model and slice, its positives, negatives, lowest score and the U within it; the driver
    orders a slice's partitions by lowest score and adds each one's positives times the negatives
    of the partitions below."""
    from pyspark.sql import functions as F

    if not models:
        return {}
    frames = [scored.select(F.lit(i).alias("m"), t["score"].alias("s"), t["positive"].cast("int").alias("y"),
                            *[_col(k) for k in keys]) for i, t in models]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    # as many partitions as cores (each one's rows are in a pandas frame): more only for large hold-outs
    parts = max(scored.sparkSession.sparkContext.defaultParallelism, math.ceil(rows * len(models) / _RANK_ROWS))
    counted = frame.repartitionByRange(parts, F.col("m"), F.col("s")).mapInPandas(
        _partition_counter([c.texts for c in combos]),
        "m int, combo int, key string, lo double, n1 long, n0 long, u double",
    ).collect()
    by_group: dict[tuple[int, int, str], list[Any]] = {}
    for row in counted:
        by_group.setdefault((row["m"], row["combo"], row["key"]), []).append(row)
    out: dict[int, dict[tuple[int, tuple[str, ...]], tuple[int, int, float]]] = {}
    for (model, combo, key), rows in by_group.items():
        rows.sort(key=lambda r: r["lo"])
        below = n1 = n0 = 0
        u = 0.0
        for row in rows:
            u += row["u"] + row["n1"] * below
            below += row["n0"]
            n1 += row["n1"]
            n0 += row["n0"]
        out.setdefault(model, {})[(combo, tuple(json.loads(key)))] = (n1, n0, u)
    return out


def _partition_counter(combos: list[list[str]]) -> Any:
    """The function each partition runs (a closure, pickled by value: workers need only pandas)."""

    def count(batches: Any) -> Any:
        import json as _json

        import pandas as pd

        parts = [b for b in batches if len(b)]
        if not parts:
            return
        out = []
        for model, frame in pd.concat(parts, ignore_index=True).groupby("m", sort=False):
            lo = float(frame["s"].min())
            for index, combo in enumerate(combos):
                rows = frame.dropna(subset=combo) if combo else frame
                if rows.empty:
                    continue
                grouped = rows.groupby([*combo, "s"], sort=True, observed=True)["y"].agg(["sum", "count"])
                positives = grouped["sum"].astype("int64")
                negatives = grouped["count"].astype("int64") - positives
                if not combo:
                    below = negatives.cumsum() - negatives
                    u = float((positives * (2 * below + negatives)).sum()) / 2
                    out.append((model, index, "[]", lo, int(positives.sum()), int(negatives.sum()), u))
                    continue
                levels = list(range(len(combo)))
                below = negatives.groupby(level=levels, sort=False).cumsum() - negatives
                twice = positives * (2 * below + negatives)  # integers: exact
                summary = pd.DataFrame({"n1": positives.groupby(level=levels).sum(),
                                        "n0": negatives.groupby(level=levels).sum(),
                                        "twice": twice.groupby(level=levels).sum()})
                for values, row in summary.iterrows():
                    values = values if isinstance(values, tuple) else (values,)
                    out.append((model, index, _json.dumps([str(v) for v in values]), lo, int(row["n1"]),
                                int(row["n0"]), float(row["twice"]) / 2))
        yield pd.DataFrame(out, columns=["m", "combo", "key", "lo", "n1", "n0", "u"])

    return count


def _metric(metric: str, task: str, row: dict[str, Any], n: int, z: float,
            confusion: dict[tuple[str, str], int] | None,
            auc: tuple[int, int, float] | None) -> tuple[float | None, tuple[float, float] | None]:
    """One metric's value and interval from a slice's aggregates: ``evaluation.metric_value`` and
    ``evaluation.interval`` in aggregate form."""
    clip = evaluation._clip
    term = "mse" if metric == "rmse" else metric
    if metric in (*_MEAN_TERMS, "rmse") and row.get(f"{term}_mean") is not None:
        mean = float(row[f"{term}_mean"])
        value = math.sqrt(mean) if metric == "rmse" else mean
        if n < 2:
            return value, None
        se = float(row[f"{term}_std"] or 0.0) / math.sqrt(n)
        if metric == "rmse":
            se = se / (2 * value) if value > 0 else 0.0
        return value, clip(metric, value - z * se, value + z * se)
    if task == "binary" and metric == "roc_auc":
        if auc is None or auc[0] == 0 or auc[1] == 0:
            return None, None
        n1, n0, u = auc
        value = u / (n1 * n0)
        if n < 2:
            return value, None
        q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
        var = (value * (1 - value) + (n1 - 1) * (q1 - value**2) + (n0 - 1) * (q2 - value**2)) / max(n1 * n0, 1)
        se = math.sqrt(max(var, 0.0))
        return value, clip(metric, value - z * se, value + z * se)
    if task == "binary" and metric in ("precision", "recall", "f1") and "tp" in row:
        tp, pp, ap = int(row["tp"]), int(row["pp"]), int(row["ap"])
        if metric == "f1":  # evaluation.metric_value's expression: 2tp / (2tp + fn + fp)
            return (2 * tp / (2 * tp + (ap - tp) + (pp - tp)) if tp else 0.0), None
        denominator = pp if metric == "precision" else ap
        value = tp / denominator if denominator else 0.0
        if n < 2 or denominator < 1:
            return value, None
        se = math.sqrt(max(value * (1 - value), 0.0) / denominator)
        return value, clip(metric, value - z * se, value + z * se)
    if task == "multiclass" and metric in ("f1_macro", "f1_weighted") and confusion is not None:
        return _f1(confusion, metric.split("_")[1]), None
    if task == "regression" and metric == "r2" and n > 1 and row.get("sse") is not None:
        residual, spread = float(row["sse"]), float(row["y_var"]) * (n - 1)
        if spread == 0:  # scikit-learn's force_finite
            return (1.0 if residual == 0 else 0.0), None
        return 1 - residual / spread, None
    return None, None


def _f1(confusion: dict[tuple[str, str], int], average: str) -> float:
    """scikit-learn's ``f1_score(average=macro|weighted, zero_division=0)`` from a confusion count,
    over the classes present in the slice's targets or predictions."""
    classes = sorted({t for t, _ in confusion} | {q for _, q in confusion})
    scores, weights = [], []
    for c in classes:
        tp = confusion.get((c, c), 0)
        predicted = sum(n for (_, q), n in confusion.items() if q == c)
        actual = sum(n for (t, _), n in confusion.items() if t == c)
        scores.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
        weights.append(actual)
    if average == "macro":
        return float(np.mean(scores))
    return float(np.average(scores, weights=weights)) if sum(weights) else 0.0


# --- the sample for the reference profile ---------------------------------------------------------


def _sample(rows: "DataFrame", predicted: list["Column"] | None, names: list[str], served: list[_Served],
            total: int, size: int, task: str) -> tuple[Any, dict[str, Predictions]]:
    """Up to ``size`` rows (Spark's Bernoulli sample, seed 0; none when 0), with every model's
    predictions of those rows, read as the local engine reads them. ``rows`` already holds the
    predictions (the cached hold-out), or ``predicted`` gives them for the sampled rows only."""
    fraction = min(1.0, size / total)
    if size <= 0:
        picked = rows.limit(0)
    else:  # sampled before predicting; Bernoulli may pick a few more than size: cut here, not in Spark
        picked = rows if fraction >= 1.0 else rows.sample(withReplacement=False, fraction=fraction, seed=0)
    if predicted is not None:
        picked = picked.select("*", *predicted)
    table = picked.select(*[_col(c) for c in names], *[_col(s.column) for s in served]).toArrow()
    table = table.slice(0, max(size, 0))
    frame = table.select(names).to_pandas()
    predictions = {}
    for one in served:
        column = table.column(one.column).combine_chunks()
        if one.kind == "proba":
            k = len(one.classes or [])
            proba = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=float).reshape(-1, k)
            labels = np.asarray(one.model.classes)[proba.argmax(axis=1)] if len(proba) else np.asarray([])
            scores = proba[:, 1] if task == "binary" and k == 2 else proba
            predictions[one.uri] = Predictions(labels=labels, scores=scores, classes=one.model.classes)
        elif one.kind == "value":
            predictions[one.uri] = Predictions(values=np.asarray(column.to_numpy(zero_copy_only=False), dtype=float))
        else:
            predictions[one.uri] = Predictions(labels=column.to_pandas().to_numpy(), classes=one.classes)
    return frame, predictions


# --- small helpers ---------------------------------------------------------------------------------


def _col(name: str) -> "Column":
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _condition(exc: BaseException) -> str | None:
    for attribute in ("getCondition", "getErrorClass"):
        getter = getattr(exc, attribute, None)
        if getter is not None:
            try:
                return getter()
            except Exception:  # noqa: BLE001 - a JVM-side error without one
                return None
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith("JVM stacktrace"):
            return line.strip()[:300]
    return type(exc).__name__


def _spark_down(exc: BaseException) -> bool:
    """Spark itself failed (out of memory, the JVM or the cluster gone), not the data or a model."""
    text = str(exc)[:20_000]
    return (isinstance(exc, ConnectionError) or type(exc).__name__ in ("Py4JNetworkError", "Py4JError")
            or "OutOfMemoryError" in text or "SparkContext was shut down" in text)


def _spark_failure(exc: BaseException, doing: str = "evaluating the hold-out") -> Exception:
    from model_lifecycle.errors import ServiceError

    if "OutOfMemoryError" in str(exc)[:20_000]:
        return ServiceError(f"Spark ran out of memory {doing} (java.lang.OutOfMemoryError)",
                            hint="give Spark more memory: spark.driver.memory (a local session: PYSPARK_SUBMIT_ARGS="
                                 "'--driver-memory 4g pyspark-shell'), spark.executor.memory on a cluster")
    return ServiceError(f"Spark failed {doing}: {_first_line(exc)}",
                        hint="see the Spark driver's log; LIFECYCLE_SPARK_MASTER names the cluster")


def _python_failure(exc: BaseException) -> bool:
    return type(exc).__name__ == "PythonException" or "PythonException" in str(exc)[:2000]


def _python_error(exc: BaseException) -> str:
    """The Python error a worker raised (its last ``Type: message`` line), not Spark's wrapping."""
    import re

    lines = [line.strip() for line in str(exc).splitlines()]
    found = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Fault)\b:", line)]
    return (found[-1] if found else _first_line(exc))[:300]

