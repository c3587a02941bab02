"""Benchmark of monitoring (issue 12): can `monitor` judge a day of busy traffic on one runner?

A production window of N captured rows x 20 features (18 numbers, 2 categories; one number and one
category drifted) with late labels and a slice column, as Parquet files of the shape `serve`
writes; the reference is the profile of a 1M-row hold-out. Each side runs in its own process, so
wall time and peak memory (ru_maxrss) are that side's alone, in the same run:
  (a) monitor: the toolkit's assessment (window read column by column, labels joined in Arrow,
      data quality, PSI / KS / JS / chi-square per feature and of the predictions, live accuracy
      overall and by slice with intervals);
  (b) baseline: pandas.read_parquet of the same files and of the raw hold-out, plus
      scipy.stats.ks_2samp per numeric feature;
  (c) Evidently's data-drift report on the same data, when --evidently-python names a Python that
      has it (a separate environment: Evidently is not a dependency of the toolkit);
  (d) with --spark, the same assessment with the Spark engine in local mode (``local[*]``; reported,
      not a goal: it is there for windows that live in a cluster), checked equal to (a): rows, every
      feature's statistics, findings and the live accuracy. Its time includes starting Spark.
Prints a/b for time (goal <= 1.5) and memory (goal <= 1), and the features each side flags.

With --ids N it measures instead one categorical column of N distinct ids (a high-cardinality input)
counted by the local engine as shipped (at most drift.CATEGORY_CAP unseen values kept) and with
every value kept (the cap lifted: what the previous release did), each in its own process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NUMBERS = [f"f{i:02d}" for i in range(18)]
CATEGORIES = ["c0", "c1"]
DRIFTED = {"f00", "c1"}
FILE_ROWS = 1_000_000


def make_data(rows: int, folder: Path, seed: int = 0) -> None:
    """Hold-out (reference) and window files; written a million rows at a time to keep memory low."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (folder / "window").mkdir(parents=True, exist_ok=True)

    def chunk(n: int, start: int, drifted: bool) -> tuple[pa.Table, pa.Table]:
        columns = {}
        for i, name in enumerate(NUMBERS):
            values = rng.normal(size=n)
            if drifted and name == "f00":
                values = values + 0.5
            columns[name] = values
        columns["c0"] = rng.choice(["a", "b", "c", "d", "e"], n)
        p = np.full(20, 1 / 20)
        if drifted:
            p = np.linspace(1, 5, 20)
            p = p / p.sum()
        columns["c1"] = rng.choice([f"k{i:02d}" for i in range(20)], n, p=p)
        score = columns["f01"] - 0.7 * columns["f02"] + 0.3 * rng.normal(size=n)
        target = (score > 0).astype("int64")
        prediction = (columns["f01"] - 0.7 * columns["f02"] > 0).astype("int64")
        region = rng.choice(["north", "south", "east", "west", "centre"], n)
        ids = np.char.add("r", np.arange(start, start + n).astype(str))
        window = pa.table({"request_id": ids, "record": np.zeros(n, dtype="int64"),
                           "timestamp": pa.array(np.full(n, np.datetime64("2026-11-27T10:00:00", "us")),
                                                 pa.timestamp("us", tz="UTC")),
                           "model_version": np.full(n, "1"), **columns, "prediction": prediction})
        labels = pa.table({"request_id": ids, "record": np.zeros(n, dtype="int64"), "target": target,
                           "region": region})
        return window, labels

    holdout, holdout_labels = chunk(1_000_000, 0, drifted=False)
    pq.write_table(holdout.append_column("target", holdout_labels.column("target"))
                   .append_column("region", holdout_labels.column("region")), folder / "holdout.parquet")
    writer = None
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        window, labels = chunk(min(FILE_ROWS, rows - start), start, drifted=True)
        pq.write_table(window, folder / "window" / f"part-{index:03d}.parquet")
        if writer is None:
            writer = pq.ParquetWriter(folder / "labels.parquet", labels.schema)
        writer.write_table(labels)
    writer.close()


def make_profile(folder: Path) -> dict:
    """The hold-out's reference profile, as the gate stores it (same builder, same evaluation code)."""
    import pandas as pd

    from model_lifecycle.core import evaluation
    from model_lifecycle.core.monitoring import profile
    from model_lifecycle.core.verdict import serialise_results

    frame = pd.read_parquet(folder / "holdout.parquet")
    policy = _policy(folder)
    predictions = evaluation.Predictions(labels=frame["prediction"].to_numpy(), classes=[0, 1])
    groups = evaluation.slice_masks(frame, ["region"], [])
    results = evaluation.evaluate_rows(policy, frame["target"].to_numpy(), predictions, groups)
    built = profile.build(model="bench", version="1", task="binary", features=frame[NUMBERS + CATEGORIES],
                          predictions=predictions, results=serialise_results(results), holdout={"rows": len(frame)},
                          slices={"columns": ["region"]}, classes=[0, 1])
    text = profile.to_json(built)
    (folder / "profile.json").write_text(text)
    return {"profile_bytes": len(text.encode()), "holdout_rows": len(frame)}


def _policy(folder: Path):
    from model_lifecycle.core import policy

    return policy.parse(f"""
version: 1
task: binary
holdout: {{path: {folder / 'holdout.parquet'}, target: target}}
slices: {{columns: [region]}}
gates: [{{metric: accuracy, floor: 0.5}}]
monitoring:
  min_rows: 1000
  performance: [{{metric: accuracy, max_drop: 0.02}}]
""")


def child_monitor(folder: Path) -> dict:
    from model_lifecycle.core.monitoring import assess, window

    profile = json.loads((folder / "profile.json").read_text())
    opened = window.open_window(str(folder / "window"), since=None, until=None, version="1")
    labels = window.open_table(str(folder / "labels.parquet"), "labels").to_table()
    judged = assess.assess(_policy(folder), profile, opened, labels=labels)
    flagged = sorted({f["subject"] for f in judged.findings if f["check"] == "feature_drift"})
    return {"rows": judged.rows, "status": judged.status, "flagged": flagged,
            "live_accuracy": judged.performance["overall"]["metrics"]["accuracy"]["value"],
            "features": judged.features, "findings": len(judged.findings)}


def child_monitor_spark(folder: Path) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from model_lifecycle.core.engines import spark, spark_window
    from model_lifecycle.core.monitoring import assess

    started = time.perf_counter()
    spark.session()
    session = time.perf_counter() - started
    profile = json.loads((folder / "profile.json").read_text())
    opened = spark_window.open_window(str(folder / "window"), since=None, until=None, version="1")
    judged = assess.assess(_policy(folder), profile, opened, labels=str(folder / "labels.parquet"))
    flagged = sorted({f["subject"] for f in judged.findings if f["check"] == "feature_drift"})
    return {"rows": judged.rows, "status": judged.status, "flagged": flagged, "session_s": session,
            "live_accuracy": judged.performance["overall"]["metrics"]["accuracy"]["value"],
            "features": judged.features, "findings": len(judged.findings)}


def child_baseline(folder: Path) -> dict:
    import pandas as pd
    from scipy import stats

    reference = pd.read_parquet(folder / "holdout.parquet", columns=NUMBERS)
    current = pd.read_parquet(folder / "window")
    labels = pd.read_parquet(folder / "labels.parquet")
    flagged = []
    for name in NUMBERS:
        result = stats.ks_2samp(reference[name].to_numpy(), current[name].to_numpy())
        if result.statistic > 0.1:
            flagged.append(name)
    return {"rows": len(current), "labels": len(labels), "flagged": flagged}


def child_evidently(folder: Path) -> dict:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = NUMBERS + CATEGORIES
    reference = pd.read_parquet(folder / "holdout.parquet", columns=columns)
    current = pd.read_parquet(folder / "window", columns=columns)
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    flagged = []
    for metric in snapshot.dict().get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift") or not isinstance(metric.get("value"), (int, float)):
            continue
        p_value = "p_value" in str(config.get("method", "")).lower().replace("-", "_")
        drifted = metric["value"] < config["threshold"] if p_value else metric["value"] >= config["threshold"]
        if drifted:
            flagged.append(config["column"])
    return {"rows": len(current), "flagged": sorted(flagged)}


def make_ids(rows: int, folder: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "window").mkdir()
    for start in range(0, rows, FILE_ROWS):
        count = min(FILE_ROWS, rows - start)
        ids = np.char.add("user-", np.arange(start, start + count).astype(str)).astype(object)
        ids[::10] = "known"  # one category the reference had
        pq.write_table(pa.table({"request_id": ids, "model_version": ["1"] * count, "user": ids}),
                       folder / "window" / f"part-{start // FILE_ROWS:04d}.parquet")


def child_ids(folder: Path, capped: bool) -> dict:
    from model_lifecycle.core.monitoring import drift, local, profile, window

    if not capped:
        drift.CATEGORY_CAP = 10**12
    summary = profile.categorical_summary(["known"] * 9 + ["other"])
    reader = local.LocalReader(window.open_window(str(folder / "window"), since=None, until=None, version=None))
    counts = reader.column_counts({"user": summary})["user"]
    _, _, _, _, unseen_rows = drift.category_shares(summary, counts.by_text(), counts.folded)
    return {"rows": counts.rows, "kept": len(counts.values or {}), "folded": counts.folded, "unseen_rows": unseen_rows}


def run_child(python: str, kind: str, folder: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([python, __file__, "--child", kind, str(folder)], capture_output=True, text=True,
                          cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = seconds
    return result


def best_of_two(kinds: tuple[str, ...], folder: Path, describe: Any) -> dict:
    """Each side twice, alternating, in its own process; the faster run of each is kept."""
    results: dict = {}
    for kind in kinds * 2:
        result = run_child(sys.executable, kind, folder)
        if kind not in results or result["seconds"] < results[kind]["seconds"]:
            results[kind] = result
        print(f"{kind}: {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MB, {describe(result)}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--evidently-python", help="A Python with evidently installed (a separate venv).")
    parser.add_argument("--spark", action="store_true", help="Also judge the window with the Spark engine.")
    parser.add_argument("--ids", type=int, metavar="N", help="Measure one column of N distinct ids instead.")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        (make_ids if args.ids else make_data)(int(args.make[0]), Path(args.make[1]))
        return
    if args.child:
        import resource

        kind, folder = args.child[0], Path(args.child[1])
        result = {"monitor": child_monitor, "baseline": child_baseline, "evidently": child_evidently,
                  "monitor_spark": child_monitor_spark, "profile": make_profile,
                  "ids_capped": lambda f: child_ids(f, True), "ids_all": lambda f: child_ids(f, False)}[kind](folder)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if args.ids:
        ids(args.ids)
        return
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        # In a child process: Linux keeps a process's peak RSS across fork and exec, so a parent that
        # had held the data would lend its peak to every measured child.
        subprocess.run([sys.executable, __file__, "--make", str(args.rows), str(folder)], check=True)
        print(f"data: {args.rows:,} rows x {len(NUMBERS) + len(CATEGORIES)} features in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        made = run_child(sys.executable, "profile", folder)
        print(f"reference profile of {made['holdout_rows']:,} rows: {made['profile_bytes'] / 1024:.0f} kB", flush=True)
        results = best_of_two(("monitor", "baseline"), folder,
                              lambda r: f"flagged {r['flagged']}")
        if args.evidently_python:
            results["evidently"] = run_child(args.evidently_python, "evidently", folder)
            e = results["evidently"]
            print(f"evidently: {e['seconds']:.1f} s, peak {e['peak_mb']:.0f} MB, flagged {e['flagged']}", flush=True)
        if args.spark:
            results["spark"] = run_child(sys.executable, "monitor_spark", folder)
            s = results["spark"]
            same = (s["rows"], s["features"], s["findings"], s["live_accuracy"]) == \
                (results["monitor"]["rows"], results["monitor"]["features"], results["monitor"]["findings"],
                 results["monitor"]["live_accuracy"])
            print(f"monitor --engine spark: {s['seconds']:.1f} s ({s['session_s']:.1f} s starting Spark), "
                  f"driver peak {s['peak_mb']:.0f} MB, flagged {s['flagged']}, same as local: {same}", flush=True)
            if not same:
                raise SystemExit("the Spark engine disagrees with the local engine")
    a, b = results["monitor"], results["baseline"]
    print(json.dumps({
        "rows": args.rows, "monitor_s": round(a["seconds"], 1), "baseline_s": round(b["seconds"], 1),
        "time_ratio": round(a["seconds"] / b["seconds"], 2), "monitor_peak_mb": round(a["peak_mb"]),
        "baseline_peak_mb": round(b["peak_mb"]), "memory_ratio": round(a["peak_mb"] / b["peak_mb"], 2),
        "monitor_flagged": a["flagged"], "baseline_flagged": b["flagged"], "drifted": sorted(DRIFTED),
        **({"evidently_s": round(results["evidently"]["seconds"], 1),
            "evidently_peak_mb": round(results["evidently"]["peak_mb"]),
            "evidently_flagged": results["evidently"]["flagged"]} if "evidently" in results else {}),
        **({"spark_s": round(results["spark"]["seconds"], 1), "spark_session_s": round(results["spark"]["session_s"], 1),
            "spark_vs_local": round(results["spark"]["seconds"] / a["seconds"], 2)} if "spark" in results else {}),
    }, indent=2))


def ids(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-ids-") as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, __file__, "--ids", str(rows), "--make", str(rows), str(folder)], check=True)
        results = best_of_two(("ids_capped", "ids_all"), folder,
                              lambda r: f"kept {r['kept']:,}, folded {r['folded']:,} rows")
    capped, every = results["ids_capped"], results["ids_all"]
    if capped["unseen_rows"] != every["unseen_rows"]:
        raise SystemExit("the capped counts disagree with counting every value")
    print(json.dumps({"rows": rows, "capped_s": round(capped["seconds"], 1), "all_s": round(every["seconds"], 1),
                      "capped_peak_mb": round(capped["peak_mb"]), "all_peak_mb": round(every["peak_mb"]),
                      "memory_ratio": round(capped["peak_mb"] / every["peak_mb"], 2),
                      "unseen_rows": capped["unseen_rows"]}, indent=2))


if __name__ == "__main__":
    main()
