"""Benchmark of the Spark engine against the local engine on the same machine (issue 13; reported,
not a goal).

N hold-out rows x 20 features with two slice columns (default 2,000,000 rows, Parquet), one logistic
regression registered on a local MLflow server. ``evaluate.py --no-log`` runs once per engine, each
in its own process, alternating and twice each (the better time of two is kept):
  (a) --engine local: pyarrow batches and numpy in this process;
  (b) --engine spark: Spark in local mode (``--master``, default ``local[*]``: every core of this
      machine), predictions through mlflow.pyfunc.spark_udf, aggregates in Spark. Its time includes
      starting the JVM and the Python workers, which a job on a running cluster does not pay.
Both give every slice's metrics and intervals; the run checks they agree (1e-9, relative above 1).
Peak memory is each process's VmHWM (the Spark side: its Python driver and its JVM, apart).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench_scale import FEATURES, make_data, register  # noqa: E402 - the same data and model as bench_scale

EVALUATE = """
import sys, time, json, contextlib, io

def peak_mb(pid="self"):  # VmHWM: ru_maxrss would report the parent's peak, inherited across exec
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None

t = time.perf_counter()
session = 0.0
if sys.argv[5] == "spark":  # the session first, timed apart: a job on a running cluster does not pay it
    from model_lifecycle.core.engines import spark
    spark.session()
    session = time.perf_counter() - t
from model_lifecycle.edges.commands import evaluate
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = evaluate.main(["--tracking-uri", sys.argv[1], "--model-uri", sys.argv[2], "--policy", sys.argv[3],
                          "--output", sys.argv[4], "--engine", sys.argv[5], "--no-log", "--json"])
jvm = None
if sys.argv[5] == "spark":
    from pyspark import SparkContext
    jvm = peak_mb(SparkContext._gateway.proc.pid)
print(json.dumps({"seconds": time.perf_counter() - t, "session_s": session, "exit": code,
                  "out": out.getvalue()[-2000:], "peak_mb": peak_mb(), "jvm_peak_mb": jvm}))
"""


def measure(env: dict[str, str], *args: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", EVALUATE, *args], capture_output=True, text=True, timeout=7200,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["exit"] != 0:
        raise SystemExit(f"evaluate exited {result['exit']}:\n{result['out']}\n{done.stderr[-3000:]}")
    result["wall"] = time.perf_counter() - started
    return result


def agree(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--master", default="local[*]", help="Spark master of the spark engine (default local[*]).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs per engine; the fastest is reported.")
    args = parser.parse_args()
    from model_lifecycle.edges import local_server

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        root = Path(tmp)
        data = root / "holdout.parquet"
        started = time.perf_counter()
        make_data(args.rows, data)
        print(f"hold-out: {args.rows:,} rows x {len(FEATURES)} features, {data.stat().st_size / 1e9:.2f} GB Parquet, "
              f"written in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores", flush=True)
        policy = root / "policy.yml"
        policy.write_text(f"version: 1\ntask: binary\nholdout: {{path: {data}, target: y}}\n"
                          "slices: {columns: [region, segment], intersections: [[region, segment]]}\n"
                          "gates: [{metric: roc_auc, floor: 0.5}]\n")
        with local_server.start(root / "mlflow") as server:
            model_uri = register(server.uri, data, "bench-spark")
            best: dict[str, dict] = {}
            for engine in ("local", "spark") * args.repeats:  # alternating
                output = root / f"{engine}.json"
                found = measure({"LIFECYCLE_SPARK_MASTER": args.master}, server.uri, model_uri, str(policy),
                                str(output), engine)
                found["results"] = json.loads(output.read_text())["results"]
                jvm = f", JVM peak {found['jvm_peak_mb']:.0f} MB" if found["jvm_peak_mb"] else ""
                print(f"{engine}: {found['seconds']:.1f} s (session start {found['session_s']:.1f} s), Python peak "
                      f"{found['peak_mb']:.0f} MB{jvm}", flush=True)
                if engine not in best or found["seconds"] < best[engine]["seconds"]:
                    best[engine] = found
    local, spark = best["local"], best["spark"]
    print(json.dumps({
        "rows": args.rows, "features": len(FEATURES), "cores": os.cpu_count(), "spark_master": args.master,
        "local_s": round(local["seconds"], 1), "spark_s": round(spark["seconds"], 1),
        "spark_session_start_s": round(spark["session_s"], 1),
        "spark_over_local": round(spark["seconds"] / local["seconds"], 2),
        "spark_without_session_over_local": round((spark["seconds"] - spark["session_s"]) / local["seconds"], 2),
        "local_peak_mb": round(local["peak_mb"]), "spark_python_peak_mb": round(spark["peak_mb"]),
        "spark_jvm_peak_mb": round(spark["jvm_peak_mb"] or 0),
        "results_agree": agree(local["results"], spark["results"]), "slices": len(local["results"]) - 1,
    }, indent=2))


if __name__ == "__main__":
    main()
