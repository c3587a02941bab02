#!/usr/bin/env bash
# The model tests, as the toolkit's check step runs them (model-policy.yml: tests.command), with
# MODEL_URI and MLFLOW_TRACKING_URI set. The runner's own python has neither MLflow nor pytest, so
# the tests run in a virtual environment with train/requirements.txt and pytest, made once per job
# (TRAINING_VENV: use this one instead, e.g. a prepared one on a self-hosted runner).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TRAINING_VENV:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/training-venv}"
if [ ! -x "${venv}/bin/python" ]; then
  python3 -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check -r train/requirements.txt
fi
if ! "${venv}/bin/python" -c "import pytest" 2>/dev/null; then
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "pytest==9.2.0"
fi
exec "${venv}/bin/python" -m pytest
