"""Example training script: train a scikit-learn classifier and log it to MLflow with its data lineage.

Start your own training from this. It uses the breast-cancer data set that ships inside
scikit-learn (nothing is downloaded), logs params, hold-out metrics, the signature and an input
example, logs the training and hold-out data as MLflow datasets with a sha256 over every row, and
writes the hold-out set (features, target and a slice column) to a CSV file later steps read.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/train.py --model-type logistic --C 0.05 --output-dir out/
  python scripts/train.py --model-type gradient_boosting --json
"""

MODEL_TYPES = ("logistic", "gradient_boosting", "random_forest")  # as api.train.MODEL_TYPES (--help imports no API)


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("train.py", __doc__.splitlines()[0], EXAMPLES)
    parser.add_argument("--experiment", default="model-training", help="MLflow experiment (default: model-training).")
    parser.add_argument("--model-type", choices=MODEL_TYPES, default="logistic", help="Estimator to train.")
    parser.add_argument("--C", type=float, default=1.0, help="Inverse regularisation for logistic (default 1.0).")
    parser.add_argument("--n-estimators", type=int, default=100, help="Trees for the tree ensembles (default 100).")
    parser.add_argument("--seed", type=int, default=42, help="Random seed for the split and the model.")
    parser.add_argument("--holdout-fraction", type=float, default=0.3, help="Share of rows held out (default 0.3).")
    parser.add_argument("--output-dir", default="out", help="Where the hold-out CSV is written (default: out/).")
    parser.add_argument("--run-name", default=None, help="MLflow run name.")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.train import TrainRequest, train

    return train(TrainRequest(args.model_type, args.C, args.n_estimators, args.seed, args.holdout_fraction,
                              args.output_dir, args.experiment, args.run_name, args.tracking_uri))


def render(result: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
    print(f"✔ trained {result['model_type']}: {metrics}")
    print(f"  model: {result['model_uri']}  (run {result['run_id']})")
    print(f"  hold-out: {result['holdout_path']}")


main = cli.command(build_parser, call, render)
