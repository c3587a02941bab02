"""Models planted by the staging tests; a module of their own so a separate serving process can
import them (logged with code_paths)."""

from __future__ import annotations

import mlflow


class SkewedInServing(mlflow.pyfunc.PythonModel):
    """Predicts differently inside MLflow's scoring server (which sets this variable) than in process:
    a stand-in for any difference of environment or dependencies between serving and evaluation."""

    def predict(self, context, model_input):
        import os

        shift = 1.0 if os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT") == "true" else 0.0
        return model_input.iloc[:, 0].astype(float) * 0 + shift


class Slow(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        import time

        time.sleep(0.15)
        return model_input.iloc[:, 0].astype(float) * 0
