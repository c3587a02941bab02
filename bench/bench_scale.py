"""Benchmark of the batched gate on a hold-out larger than comfortable memory (issue 13).

N hold-out rows x 20 features with two slice columns (default 20,000,000 rows, written a million at a
time), one logistic regression registered on a local MLflow server. Each side in its own process,
so wall time and peak memory (ru_maxrss) are its own, in the same run:
  (a) pandas + scikit-learn: read the whole table, predict_proba, roc_auc / accuracy / log loss overall;
  (b) evaluate.py --no-log: the toolkit's batched engine, overall and by slice (2 columns and their
      intersection) with intervals, the reference profile's sample, the hold-out's digest.
Goal: b/a at most 1.3x in time and at most 0.25 in peak memory; the overall metrics must be equal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FEATURES = [f"f{i:02d}" for i in range(20)]

RAW = """
import sys, time, json, resource
t = time.perf_counter()
import mlflow, pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score, log_loss
mlflow.set_tracking_uri(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
model = mlflow.sklearn.load_model(sys.argv[3])
proba = model.predict_proba(frame[[c for c in frame.columns if c.startswith("f")]])[:, 1]
metrics = {"roc_auc": roc_auc_score(frame.y, proba), "accuracy": accuracy_score(frame.y, proba >= 0.5),
           "log_loss": log_loss(frame.y, proba)}
print(json.dumps({"seconds": time.perf_counter() - t, "metrics": metrics,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BATCHED = """
import sys, time, json, contextlib, io, resource
t = time.perf_counter()
from model_lifecycle.edges.commands import evaluate
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = evaluate.main(["--tracking-uri", sys.argv[1], "--model-uri", sys.argv[3], "--policy", sys.argv[4],
                          "--output", sys.argv[5], "--no-log", "--json"])
result = json.loads(out.getvalue())
print(json.dumps({"seconds": time.perf_counter() - t, "exit": code,
                  "metrics": {k: v["value"] for k, v in result["overall"].items()},
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_data(rows: int, path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        X = rng.normal(size=(n, len(FEATURES)))
        logits = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=n)
        table = pa.table({**{f: X[:, i] for i, f in enumerate(FEATURES)}, "y": (logits > 0).astype("int64"),
                          "region": rng.choice(["north", "south", "east", "west", "centre"], n),
                          "segment": rng.choice(["a", "b", "c", "d"], n)})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def register(uri: str, data: Path, experiment: str = "bench-scale") -> str:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    import pyarrow.parquet as pq

    frame = pq.ParquetFile(data).read_row_group(0, columns=[*FEATURES, "y"]).slice(0, 50_000).to_pandas()
    model = LogisticRegression(max_iter=1000).fit(frame[FEATURES], frame.y)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=mlflow.models.infer_signature(
            frame[FEATURES].head(5), model.predict(frame[FEATURES].head(5))))
    return info.model_uri


def measure(code: str, *args: str) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=3600,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--register", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_data(int(args.make[0]), Path(args.make[1]))
        return
    if args.register:
        print(register(args.register[0], Path(args.register[1])))
        return
    from model_lifecycle.edges import local_server

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        data = root / "holdout.parquet"
        started = time.perf_counter()
        # In a child process: Linux keeps a process's peak RSS across fork and exec, so a parent that
        # had held the data would lend its peak to every measured child.
        subprocess.run([sys.executable, __file__, "--make", str(args.rows), str(data)], check=True)
        print(f"hold-out: {args.rows:,} rows x {len(FEATURES)} features, {data.stat().st_size / 1e9:.2f} GB Parquet, "
              f"written in {time.perf_counter() - started:.0f} s", flush=True)
        policy = root / "policy.yml"
        policy.write_text(f"version: 1\ntask: binary\nholdout: {{path: {data}, target: y}}\n"
                          "slices: {columns: [region, segment], intersections: [[region, segment]]}\n"
                          "gates: [{metric: roc_auc, floor: 0.5}]\ncheck: {}\n".replace("check: {}\n", ""))
        with local_server.start(root / "mlflow") as server:
            model_uri = subprocess.run([sys.executable, __file__, "--register", server.uri, str(data)], check=True,
                                       capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results: dict[str, dict] = {}
            for kind in ("raw", "batched", "raw", "batched"):  # alternating; the better of two each
                if kind == "raw":
                    found = measure(RAW, server.uri, str(data), model_uri)
                else:
                    found = measure(BATCHED, server.uri, str(data), model_uri, str(policy), str(root / "e.json"))
                print(f"{kind}: {found['seconds']:.1f} s, peak {found['peak_mb']:.0f} MB", flush=True)
                if kind not in results or found["seconds"] < results[kind]["seconds"]:
                    results[kind] = found
    a, b = results["raw"], results["batched"]
    equal = all(abs(a["metrics"][k] - b["metrics"][k]) < 1e-9 for k in ("roc_auc", "accuracy", "log_loss"))
    print(json.dumps({"rows": args.rows, "pandas_sklearn_s": round(a["seconds"], 1),
                      "batched_s": round(b["seconds"], 1), "time_ratio": round(b["seconds"] / a["seconds"], 2),
                      "pandas_sklearn_peak_mb": round(a["peak_mb"]), "batched_peak_mb": round(b["peak_mb"]),
                      "memory_ratio": round(b["peak_mb"] / a["peak_mb"], 3), "overall_metrics_equal": equal},
                     indent=2))


if __name__ == "__main__":
    main()
