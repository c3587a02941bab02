"""Benchmark of the gate (issue 3): is compare_baseline cheap enough to run on every pull request?

On N hold-out rows x 20 features with 2 slice columns, measured in one run, each in its own
process so that wall time and peak memory (ru_maxrss) are those of that step alone:
  (a) raw: read the hold-out, load one model, predict, scikit-learn metrics overall;
  (b) compare_baseline.py: candidate vs champion, slices (2 columns + their intersection), intervals;
  (c) mlflow.models.evaluate on the same data, for each of the two models.
Prints b/(2a) (target <= 1.5), b/c (target: far below 1) and peak memory b/a (target <= 2).
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


def make_data(rows: int, path: Path, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, len(FEATURES))).astype("float64")
    logits = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=rows)
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["y"] = (logits > 0).astype("int64")
    frame["region"] = rng.choice(["north", "south", "east", "west", "centre"], rows)
    frame["segment"] = rng.choice(["a", "b", "c", "d"], rows)
    frame.to_parquet(path)


def train_and_register(uri: str, data: Path, name: str) -> tuple[str, str]:
    import mlflow
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from model_lifecycle.core import lifecycle
    from model_lifecycle.adapters import registry
    from model_lifecycle.api.train import pip_requirements, trusted_types_for

    frame = pd.read_parquet(data).head(50_000)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-gate")
    versions = []
    for model in (LogisticRegression(max_iter=1000), HistGradientBoostingClassifier(max_iter=50, random_state=0)):
        model.fit(frame[FEATURES], frame.y)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", signature=mlflow.models.infer_signature(frame[FEATURES].head(5), model.predict(frame[FEATURES].head(5))),
                skops_trusted_types=trusted_types_for(model), pip_requirements=pip_requirements(),
            )
        versions.append(str(mlflow.register_model(info.model_uri, name).version))
    client = registry.connect(uri)
    names = lifecycle.AliasNames()
    # The champion the measured compare runs against: set up outside the gate, so forced, with a reason.
    setup = "bench set-up: the champion the measured gate compares with"
    lifecycle.stage(client, name, versions[0], names, force=True, reason=setup)
    lifecycle.promote(client, name, versions[0], names, force=True, reason=setup)
    return versions[0], versions[1]


RAW = """
import sys, time, json
t = time.perf_counter()
import mlflow, pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score, log_loss
mlflow.set_tracking_uri(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
model = mlflow.sklearn.load_model(sys.argv[3])
X = frame[[c for c in frame.columns if c.startswith("f")]]
proba = model.predict_proba(X)[:, 1]
metrics = {"roc_auc": roc_auc_score(frame.y, proba), "accuracy": accuracy_score(frame.y, proba >= 0.5),
           "log_loss": log_loss(frame.y, proba)}
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "metrics": metrics, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COMPARE = """
import sys, time, json, contextlib, io
t = time.perf_counter()
sys.path.insert(0, sys.argv[5])
from model_lifecycle.edges.commands import compare_baseline
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = compare_baseline.main(["--tracking-uri", sys.argv[1], "--model", sys.argv[2], "--candidate", sys.argv[3],
                                  "--policy", sys.argv[4], "--output", sys.argv[6] + "/v.json", "--report", sys.argv[6] + "/r.md", "--json"])
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "exit": code, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

EVALUATE = """
import sys, time, json, warnings
warnings.simplefilter("ignore")
t = time.perf_counter()
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("bench-gate-evaluate")
frame = pd.read_parquet(sys.argv[2]).drop(columns=["region", "segment"])
with mlflow.start_run():
    result = mlflow.models.evaluate(sys.argv[3], frame, targets="y", model_type="classifier",
                                    evaluator_config={"log_model_explainability": False})
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(code: str, *args: str, timeout: float = 1800) -> dict:
    """Run a snippet in a fresh interpreter; wall time, its own timing, and its own peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evaluate", action="store_true", help="Skip (c), mlflow.models.evaluate.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from model_lifecycle.edges import local_server

    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        data = root / "holdout.parquet"
        make_data(args.rows, data)
        policy = root / "policy.yml"
        policy.write_text(json.dumps({
            "version": 1, "task": "binary", "holdout": {"path": str(data), "target": "y"},
            "slices": {"columns": ["region", "segment"], "intersections": [["region", "segment"]], "min_size": 100},
            "gates": [{"metric": "roc_auc", "floor": 0.6}, {"metric": "roc_auc", "improvement": {"absolute": 0.001}},
                      {"metric": "accuracy", "guardrail": {"max_drop": 0.01, "slices": True}}],
        }))
        with local_server.start(root / "server") as server:
            champion, candidate = train_and_register(server.uri, data, "bench-gate")
            raw = [measure(RAW, server.uri, str(data), f"models:/bench-gate/{v}") for v in (champion, candidate)]
            compare = measure(COMPARE, server.uri, "bench-gate", candidate, str(policy), str(REPO), tmp)
            evaluate = [] if args.skip_evaluate else [
                measure(EVALUATE, server.uri, str(data), f"models:/bench-gate/{v}") for v in (champion, candidate)
            ]
    a = sum(r["wall"] for r in raw)
    b = compare["wall"]
    figures = {
        "rows": args.rows,
        "a_raw_champion_s": raw[0]["wall"], "a_raw_candidate_s": raw[1]["wall"], "two_a_s": a,
        "b_compare_s": b, "b_exit": compare["exit"],
        "b_over_2a": b / a,
        "peak_a_mb": max(r["peak_mb"] for r in raw), "peak_b_mb": compare["peak_mb"],
        "peak_b_over_a": compare["peak_mb"] / max(r["peak_mb"] for r in raw),
    }
    if evaluate:
        c = sum(r["wall"] for r in evaluate)
        figures.update(c_evaluate_s=c, b_over_c=b / c, peak_c_mb=max(r["peak_mb"] for r in evaluate))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"hold-out: {args.rows:,} rows x {len(FEATURES)} features, slices region x segment (+ intersection)")
    print(f"(a) raw load+predict+metrics, two models: {a:7.2f} s  (champion {raw[0]['wall']:.2f}, candidate {raw[1]['wall']:.2f})")
    print(f"(b) compare_baseline.py:                 {b:7.2f} s  exit {compare['exit']}")
    if evaluate:
        print(f"(c) mlflow.models.evaluate, two models:   {figures['c_evaluate_s']:7.2f} s")
    print(f"b / 2a = {figures['b_over_2a']:.2f}   (target <= 1.5)")
    if evaluate:
        print(f"b / c  = {figures['b_over_c']:.3f}  (target: far below 1)")
    print(f"peak memory: a {figures['peak_a_mb']:.0f} MB, b {figures['peak_b_mb']:.0f} MB, b/a = {figures['peak_b_over_a']:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
