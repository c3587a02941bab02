"""Train the model and register it as a new version in MLflow.

The pull-request workflow (.github/workflows/on-pull-request.yml) runs

    python train/train_and_register.py --model "$MODEL_NAME" >> "$GITHUB_OUTPUT"

so this prints exactly one line on stdout, ``version=<N>``; everything else goes to stderr. It needs
MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN when the server asks for one). On your machine:

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python train/train_and_register.py --model biopsy-classifier

Replace the model with yours and keep what the toolkit relies on:
* a signature and an input example: the gate checks the hold-out against the signature, and the
  serving and monitoring steps read the input columns from it;
* the training and hold-out data recorded as run tags ``lifecycle.dataset.<name>.sha256`` and
  ``.rows``: the model card shows them and its check fails when they no longer match the version;
* registration through the toolkit (``register``): it tags the version with its lineage (training
  run, git commit, workflow run) and writes the registration into the audit record.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
TARGET = "target"  # model-policy.yml: holdout.target
SLICE = "size_band"  # model-policy.yml: slices.columns (a column to report by, not a feature)

# The model. A pull request that changes this file trains a candidate and runs the gate against
# the version in production.
PARAMS = {"C": 0.1, "max_iter": 5000}


def build_model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(**PARAMS))


def train_and_register(model_name: str) -> str:
    import mlflow
    import pandas as pd
    import skops.io
    from sklearn.metrics import accuracy_score, roc_auc_score

    from model_lifecycle import tags
    from model_lifecycle.api.lifecycle import RegisterRequest, register
    from model_lifecycle.core.lineage import dataframe_sha256

    train = pd.read_csv(DATA / "train.csv")
    holdout = pd.read_csv(DATA / "holdout.csv")
    features = [c for c in train.columns if c not in (TARGET, SLICE)]
    model = build_model().fit(train[features], train[TARGET])
    scores = model.predict_proba(holdout[features])[:, 1]

    mlflow.set_experiment(f"{model_name}-training")
    with mlflow.start_run(run_name=f"train {model_name}"):
        mlflow.log_params(PARAMS)
        mlflow.log_metrics({"holdout_roc_auc": roc_auc_score(holdout[TARGET], scores),
                            "holdout_accuracy": accuracy_score(holdout[TARGET], scores >= 0.5)})
        for name, frame, context in (("train", train, "training"), ("holdout", holdout, "evaluation")):
            with warnings.catch_warnings():  # MLflow's hints about a file source and the integer target column
                warnings.simplefilter("ignore", UserWarning)
                dataset = mlflow.data.from_pandas(frame, source=f"data/{name}.csv", targets=TARGET, name=name)
                mlflow.log_input(dataset, context=context)
            mlflow.set_tags({tags.dataset(name, "sha256"): dataframe_sha256(frame),
                             tags.dataset(name, "rows"): str(len(frame))})
        info = mlflow.sklearn.log_model(
            model, name="model",
            signature=mlflow.models.infer_signature(holdout[features], model.predict(holdout[features])),
            input_example=holdout[features].head(3),
            # MLflow saves scikit-learn models with skops, which loads only the types it is told to trust
            skops_trusted_types=sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model))),
            # stated, not inferred: inference re-imports the model in a subprocess to find these
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    registered = register(RegisterRequest(model_name, info.model_uri, reason="trained by train/train_and_register.py"))
    return registered.version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Registered model name in MLflow.")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # stdout is $GITHUB_OUTPUT: only the version goes there
        version = train_and_register(args.model)
    print(f"version={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
