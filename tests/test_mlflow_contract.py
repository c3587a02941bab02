"""What the toolkit relies on in MLflow beyond its public API, checked without a server.

A failure here means the installed MLflow changed under the toolkit: each message names the
MLflow version and what to do. Neither check needs a tracking server: constructing a client and
its registry client sends no request (the URIs point at a closed port on purpose).
"""

from __future__ import annotations

import inspect
import re
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from model_lifecycle.adapters.registry import WRITER_METHODS, registry_writer_problems, writer

NOWHERE = "http://127.0.0.1:1"
VERSION = mlflow.__version__
# The methods the toolkit calls on writer(client) (core/lifecycle.py, core/claims.py).
EXPECTED_WRITER_METHODS = {
    "set_registered_model_alias", "delete_registered_model_alias", "set_model_version_tag",
    "delete_model_version_tag", "transition_model_version_stage", "set_registered_model_tag",
}


def _broken(what: str, fix: str) -> str:
    return f"MLflow {VERSION} broke the toolkit's use of {what}. {fix}"


REGISTRY_FIX = (
    "Either make model_lifecycle.adapters.registry.writer() return the public client (correct, one "
    "extra full-model GET per write), or update WRITER_METHODS/writer() to this MLflow's registry client."
)


@pytest.fixture()
def client() -> MlflowClient:
    return MlflowClient(tracking_uri=NOWHERE, registry_uri=NOWHERE)


# --- the private registry client behind registry.writer() ------------------------------------------


def test_writer_methods_are_the_ones_the_toolkit_calls():
    assert set(WRITER_METHODS) == EXPECTED_WRITER_METHODS
    from model_lifecycle.core import claims, lifecycle

    apply_source = inspect.getsource(lifecycle._apply)
    called = set(re.findall(r"\bclient\.(\w+)\(", apply_source))
    called |= set(re.findall(r"\bwriter\(\w+\)\.(\w+)\(", inspect.getsource(claims)))
    assert called <= set(WRITER_METHODS), f"writer(client) is called with {sorted(called - set(WRITER_METHODS))}: add to WRITER_METHODS"


def _registry_client(client: MlflowClient):
    get_registry_client = getattr(client, "_get_registry_client", None)
    if not callable(get_registry_client):
        pytest.fail(_broken("MlflowClient._get_registry_client()", f"It no longer exists. {REGISTRY_FIX}"))
    return get_registry_client()


def test_private_registry_client_exists(client):
    private = _registry_client(client)
    missing = sorted(m for m in WRITER_METHODS if not callable(getattr(private, m, None)))
    if missing:
        pytest.fail(_broken("MlflowClient._get_registry_client()",
                            f"{type(private).__name__} lacks {missing}. {REGISTRY_FIX}"))


@pytest.mark.parametrize("method", sorted(WRITER_METHODS))
def test_private_registry_client_takes_the_public_parameters(client, method):
    """Same parameter names in the same order as MlflowClient's public method. MlflowClient may add
    trailing optional ones (3.x: the deprecated ``stage`` of the version-tag methods) that the
    toolkit never passes."""
    private = getattr(_registry_client(client), method, None)
    if private is None:
        pytest.fail(_broken(f"MlflowClient._get_registry_client().{method}", f"It no longer exists. {REGISTRY_FIX}"))
    public_params = list(inspect.signature(getattr(client, method)).parameters.values())
    public = [p.name for p in public_params]
    private_names = list(inspect.signature(private).parameters)
    passed = list(WRITER_METHODS[method])
    extras = public_params[len(private_names):]
    detail = f"MlflowClient.{method}{public}, registry client {private_names}, the toolkit passes {passed}."
    if public[: len(private_names)] != private_names or private_names[: len(passed)] != passed:
        pytest.fail(_broken(f"MlflowClient._get_registry_client().{method}", f"Parameters differ: {detail} {REGISTRY_FIX}"))
    required = [p.name for p in extras if p.default is inspect.Parameter.empty or p.name in passed]
    if required:
        pytest.fail(_broken(f"MlflowClient._get_registry_client().{method}",
                            f"MlflowClient adds {required}, which the registry client lacks: {detail} {REGISTRY_FIX}"))


def test_writer_uses_the_private_registry_client_silently(client):
    problems = registry_writer_problems(client)
    if problems:
        pytest.fail(_broken("MlflowClient._get_registry_client()", f"{'; '.join(problems)}. {REGISTRY_FIX}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write = writer(client)
    assert write is _registry_client(client)


def test_writer_falls_back_loudly_without_the_private_client(client):
    class NoRegistryClient(MlflowClient):
        _get_registry_client = None

    bare = NoRegistryClient(tracking_uri=NOWHERE, registry_uri=NOWHERE)
    with pytest.warns(RuntimeWarning, match=rf"MLflow {re.escape(VERSION)}: .*has no _get_registry_client\(\).*update model_lifecycle"):
        assert writer(bare) is bare


def test_writer_falls_back_loudly_when_a_signature_changes(client, monkeypatch):
    real = _registry_client(client)

    class Changed:
        def __getattr__(self, name):
            return getattr(real, name)

        def set_registered_model_alias(self, model, alias, version):  # "name" renamed
            raise AssertionError("must not be called")

    changed = Changed()
    monkeypatch.setattr(client, "_get_registry_client", lambda: changed)
    with pytest.warns(RuntimeWarning, match=rf"MLflow {re.escape(VERSION)}: .*set_registered_model_alias"):
        assert writer(client) is client


# --- schema enforcement in core/evaluation.feature_frame -------------------------------------------


def test_public_validate_schema_is_the_schema_enforcement():
    """feature_frame uses mlflow.models.validate_schema, public since MLflow 2.x and a thin wrapper
    of the private _enforce_schema that PyFuncModel.predict applies."""
    import mlflow.models

    fix = "Pin MLflow back, or switch core/evaluation.feature_frame to this MLflow's schema check."
    validate = getattr(mlflow.models, "validate_schema", None)
    if validate is None or "validate_schema" not in mlflow.models.__all__:
        pytest.fail(_broken("mlflow.models.validate_schema", f"It is no longer public. {fix}"))
    params = list(inspect.signature(validate).parameters)
    if params[:2] != ["data", "expected_schema"]:
        pytest.fail(_broken("mlflow.models.validate_schema", f"Its parameters are now {params}. {fix}"))


def test_feature_frame_enforces_the_signature():
    from mlflow.models import infer_signature

    from model_lifecycle.core.evaluation import LoadedModel, feature_frame
    from model_lifecycle.errors import BadInput

    train = pd.DataFrame({"x1": np.linspace(0, 1, 10), "x2": np.arange(10, dtype=float)})
    signature = infer_signature(train, np.zeros(10))
    model = LoadedModel("models:/m/1", None, None, None, ["x1", "x2"], signature)
    holdout = train[["x2", "x1"]].assign(y=np.zeros(10), extra="ignored")
    assert list(feature_frame(model, holdout, "y", require_signature=True).columns) == ["x1", "x2"]
    for bad, why in ((["a"] * 10, "str to float64"), (np.arange(10), "int64 to float64")):
        with pytest.raises(BadInput, match=f"does not conform to the signature of 'models:/m/1': .*x2.*{why}"):
            feature_frame(model, holdout.assign(x2=bad), "y", require_signature=True)
