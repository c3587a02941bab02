"""This repository's own model tests. The toolkit's check step runs them against every candidate
(``tests.command`` in model-policy.yml) with MODEL_URI=models:/<name>/<version> and the tracking
server in the environment, in a virtual environment made from tests/requirements.txt
(``tests.requirements``). Run them yourself, in an environment with those requirements, with

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 MODEL_URI=models:/biopsy-classifier/3 pytest

The gate already compares metrics with the champion's; test here what a metric does not show.
"""

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

HOLDOUT = Path(__file__).resolve().parents[1] / "data" / "holdout.csv"
MALIGNANT, BENIGN = 0, 1  # the data set's labels


@pytest.fixture(scope="module")
def model():
    return mlflow.pyfunc.load_model(os.environ["MODEL_URI"])


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(HOLDOUT).drop(columns=["target", "size_band"])


def test_every_row_gets_one_of_the_two_classes(model, rows):
    predicted = np.asarray(model.predict(rows))
    assert len(predicted) == len(rows)
    assert set(np.unique(predicted)) <= {MALIGNANT, BENIGN}


def test_a_row_scored_alone_gets_the_answer_it_gets_in_a_batch(model, rows):
    batch = np.asarray(model.predict(rows.head(20)))
    alone = np.array([np.asarray(model.predict(rows.iloc[[i]]))[0] for i in range(20)])
    assert (batch == alone).all()


def test_the_largest_tumours_in_the_hold_out_are_called_malignant(model, rows):
    largest = rows.nlargest(5, "worst_radius")
    assert (np.asarray(model.predict(largest)) == MALIGNANT).all()


def test_a_request_missing_a_feature_is_refused_not_guessed(model, rows):
    with pytest.raises(MlflowException):
        model.predict(rows.drop(columns=["worst_radius"]).head(3))
