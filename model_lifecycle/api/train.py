"""Example training: a scikit-learn classifier logged to MLflow with its data lineage.

Start your own training from this. It uses the breast-cancer data set that ships inside
scikit-learn (nothing is downloaded), logs params, hold-out metrics, the signature and an input
example, logs the training and hold-out data as MLflow datasets with a sha256 over every row, and
writes the hold-out set (features, target and a slice column) to a CSV file later steps read.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_lifecycle import tags
from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result

MODEL_TYPES = ("logistic", "gradient_boosting", "random_forest")
TARGET = "target"
SLICE_COLUMN = "size_band"


@dataclass(frozen=True)
class TrainRequest:
    model_type: str = "logistic"
    C: float = 1.0
    n_estimators: int = 100
    seed: int = 42
    holdout_fraction: float = 0.3
    output_dir: str = "out"
    experiment: str = "model-training"
    run_name: str | None = None
    tracking_uri: str | None = None


@dataclass
class TrainResult(Result):
    run_id: str
    model_uri: str
    holdout_path: str
    metrics: dict[str, float]
    datasets: dict[str, str]
    model_type: str


def load_data(seed: int, holdout_fraction: float):
    """Breast-cancer data with a slice column derived from tumour size (small/medium/large)."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    if not 0.05 <= holdout_fraction <= 0.8:
        raise BadInput(f"--holdout-fraction must be between 0.05 and 0.8, got {holdout_fraction}")
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame[SLICE_COLUMN] = pd.cut(
        frame["mean_radius"], bins=[0, 12, 16, float("inf")], labels=["small", "medium", "large"]
    ).astype(str)
    train, holdout = train_test_split(
        frame, test_size=holdout_fraction, random_state=seed, stratify=frame[TARGET]
    )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def make_estimator(model_type: str, C: float, n_estimators: int, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model_type == "logistic":
        if C <= 0:
            raise BadInput(f"--C must be positive, got {C}")
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    if model_type == "gradient_boosting":
        return GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
    return RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)


def pip_requirements() -> list[str]:
    """The model's requirements, stated instead of inferred: MLflow's inference re-imports the model
    in a subprocess (about 8 s per model here) to find what this function already knows."""
    import mlflow.sklearn

    return mlflow.sklearn.get_default_pip_requirements(include_skops=True)


def trusted_types_for(model: Any) -> list[str]:
    """Types skops must be told to trust for this model (tree models need their Tree classes).

    MLflow saves scikit-learn models with skops, which refuses types it does not know. The model
    was built by this very process, so trusting exactly the types it contains is safe.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def train(request: TrainRequest) -> TrainResult:
    """Train, evaluate on the hold-out, and log the model with its data lineage."""
    import mlflow
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    from model_lifecycle.adapters import registry
    from model_lifecycle.core import lineage

    registry.connect(request.tracking_uri)
    train, holdout = load_data(request.seed, request.holdout_fraction)
    features = [c for c in train.columns if c not in (TARGET, SLICE_COLUMN)]
    model = make_estimator(request.model_type, request.C, request.n_estimators, request.seed)
    model.fit(train[features], train[TARGET])

    output = Path(request.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    holdout_path = (output / "holdout.csv").resolve()
    train_path = (output / "train.csv").resolve()
    holdout.to_csv(holdout_path, index=False)
    train.to_csv(train_path, index=False)

    proba = model.predict_proba(holdout[features])[:, 1]
    predicted = (proba >= 0.5).astype(int)
    metrics = {
        "accuracy": float(accuracy_score(holdout[TARGET], predicted)),
        "roc_auc": float(roc_auc_score(holdout[TARGET], proba)),
        "f1": float(f1_score(holdout[TARGET], predicted)),
        "log_loss": float(log_loss(holdout[TARGET], proba)),
    }
    digests = {"train": lineage.dataframe_sha256(train), "holdout": lineage.dataframe_sha256(holdout)}

    with registry.mlflow_errors():
        mlflow.set_experiment(request.experiment)
        with mlflow.start_run(run_name=request.run_name) as run:
            params = {"model_type": request.model_type, "seed": request.seed, "holdout_fraction": request.holdout_fraction}
            params.update({"C": request.C} if request.model_type == "logistic" else {"n_estimators": request.n_estimators})
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for name, frame, path, context in (
                ("train", train, train_path, "training"),
                ("holdout", holdout, holdout_path, "evaluation"),
            ):
                with warnings.catch_warnings():
                    # "source can be interpreted in multiple ways": it is a file. And the dataset's schema,
                    # computed here once (log_input reuses it), holds the integer target column: MLflow's
                    # hint about integer columns concerns a model's input signature, which has none.
                    warnings.simplefilter("ignore", UserWarning)
                    dataset = mlflow.data.from_pandas(
                        frame, source=str(path), targets=TARGET, name=name, digest=lineage.mlflow_digest(digests[name])
                    )
                    dataset.schema  # noqa: B018 - cached property, computed under this filter
                mlflow.log_input(dataset, context=context)
                mlflow.set_tags({
                    tags.dataset(name, "sha256"): digests[name],
                    tags.dataset(name, "rows"): str(len(frame)),
                    tags.dataset(name, "context"): context,
                    tags.dataset(name, "source"): str(path),
                })
            commit = lineage.git_commit()
            if commit:
                mlflow.set_tag(tags.GIT_COMMIT, commit)
            signature = mlflow.models.infer_signature(holdout[features].head(50), model.predict(holdout[features].head(50)))
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=holdout[features].head(3),
                skops_trusted_types=trusted_types_for(model),
                pip_requirements=pip_requirements(),
            )
    return TrainResult(run.info.run_id, info.model_uri, str(holdout_path), metrics, digests, request.model_type)
