"""Everything that reads the MLflow model registry, with MLflow's errors turned into the toolkit's.

Why a module of its own: MLflow returns alias versions as int or str depending on the store,
omits aliases from ``search_model_versions``, and reports a dead server as a generic exception.
Callers get normalised values and errors that name the model, version or alias at fault.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from model_lifecycle import settings, tags
from model_lifecycle.errors import BadInput, ServiceError, ToolkitError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel


_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
_VALID_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_ALIAS_LENGTH = 255


def connect(tracking_uri: str | None) -> "MlflowClient":
    """A client bound to one tracking server ($MLFLOW_TRACKING_URI when none is given); refuses to
    fall back to a local ./mlruns by accident."""
    tracking_uri = tracking_uri or settings.TRACKING_URI.get()
    if not tracking_uri:
        raise BadInput(
            "no tracking server given",
            hint="pass --tracking-uri or set MLFLOW_TRACKING_URI",
        )
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# The MlflowClient methods the toolkit calls on ``writer(client)``, each with the parameters it
# passes, in order (core/lifecycle.py and core/lock.py). Shared with tests/test_mlflow_contract.py,
# which fails naming the installed MLflow when the private registry client stops matching.
WRITER_METHODS: dict[str, tuple[str, ...]] = {
    "set_registered_model_alias": ("name", "alias", "version"),
    "delete_registered_model_alias": ("name", "alias"),
    "set_model_version_tag": ("name", "version", "key", "value"),
    "delete_model_version_tag": ("name", "version", "key"),
    "transition_model_version_stage": ("name", "version", "stage", "archive_existing_versions"),
    "set_registered_model_tag": ("name", "key", "value"),
    "delete_registered_model": ("name",),
    "create_registered_model": ("name", "tags", "description"),
}


def writer(client: "MlflowClient") -> Any:
    """The write path for alias and tag changes, without MlflowClient's per-call prompt check.

    Each of MlflowClient's alias/tag setters first GETs the whole registered model to refuse
    prompts: 6 of a promotion's 18 REST calls, each loading every version server-side (measured in
    bench/bench_lifecycle.py). The toolkit has already read the model under its lock, so it writes
    through the registry client MlflowClient itself delegates to (``_get_registry_client``, private).
    If an MLflow release no longer offers it with the methods and parameters in WRITER_METHODS,
    writes go through the public client (correct, one model read slower per write) with a
    RuntimeWarning naming the MLflow version; tests/test_mlflow_contract.py fails on the same check."""
    problems = registry_writer_problems(client)
    if not problems:
        return client._get_registry_client()
    import warnings

    import mlflow

    warnings.warn(
        f"MLflow {mlflow.__version__}: model_lifecycle writes through the public MlflowClient "
        f"(one extra model read per write) because {'; '.join(problems)}; update model_lifecycle "
        "(adapters/registry.py) for this MLflow version",
        RuntimeWarning,
        stacklevel=2,
    )
    return client


def registry_writer_problems(client: "MlflowClient") -> list[str]:
    """Why ``client._get_registry_client()`` cannot stand in for ``client``; empty when it can.

    It must exist and return an object with every method in WRITER_METHODS, each taking the
    public MlflowClient method's parameters by the same names in the same order. The public
    method may add trailing optional ones (MLflow 3.x: the deprecated ``stage`` of the
    version-tag methods) as long as the toolkit passes none of them."""
    import inspect

    get_registry_client = getattr(client, "_get_registry_client", None)
    if not callable(get_registry_client):
        return [f"{type(client).__name__} has no _get_registry_client()"]
    private_client = get_registry_client()
    private_name = type(private_client).__name__
    problems = []
    for method, passed in WRITER_METHODS.items():
        public, private = getattr(client, method, None), getattr(private_client, method, None)
        if not callable(public) or not callable(private):
            missing = type(client).__name__ if not callable(public) else private_name
            problems.append(f"{missing} has no {method}()")
            continue
        public_params = list(inspect.signature(public).parameters.values())
        private_names = list(inspect.signature(private).parameters)
        public_names = [p.name for p in public_params]
        extras = public_params[len(private_names) :]
        if (
            public_names[: len(private_names)] != private_names
            or tuple(private_names[: len(passed)]) != passed
            or any(p.default is inspect.Parameter.empty or p.name in passed for p in extras)
        ):
            problems.append(
                f"{method}: {type(client).__name__} takes {public_names}, {private_name} takes "
                f"{private_names}, the toolkit passes {list(passed)}"
            )
    return problems


def translate_mlflow_error(exc: BaseException) -> ToolkitError | None:
    """Map an MLflow or network exception to exit 3 (service) or exit 2 (bad input); None if unrelated."""
    try:
        from mlflow.exceptions import MlflowException, RestException
    except ImportError:  # pragma: no cover
        return None
    import requests

    if isinstance(exc, ToolkitError):
        return exc
    if isinstance(exc, requests.exceptions.RequestException):
        return ServiceError(f"tracking server unreachable: {_short(exc)}")
    if not isinstance(exc, MlflowException):
        return None
    text = str(exc)
    if text.startswith("API request to") or "Max retries exceeded" in text:
        return ServiceError(
            f"tracking server failed after bounded retries: {_short(exc)}",
            hint="check the server, or raise MLFLOW_HTTP_REQUEST_MAX_RETRIES / MLFLOW_HTTP_REQUEST_TIMEOUT",
        )
    status = exc.get_http_status_code()
    if isinstance(exc, RestException) and status >= 500:
        return ServiceError(f"tracking server answered {status}: {_short(exc)}")
    if status in (401, 403):
        return ServiceError(
            f"tracking server refused the credentials ({status}): {_short(exc)}",
            hint="check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD",
        )
    return BadInput(_short(exc))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", "")
    return str(code)


def is_not_found(exc: BaseException) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in _error_code(exc) or "NOT_FOUND" in _error_code(exc)


def is_already_exists(exc: BaseException) -> bool:
    return "RESOURCE_ALREADY_EXISTS" in _error_code(exc)


@contextmanager
def mlflow_errors(not_found: str | None = None) -> Iterator[None]:
    """Translate MLflow errors raised in the block; a missing resource becomes ``not_found``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if not_found and is_not_found(exc):
            raise BadInput(not_found) from exc
        mapped = translate_mlflow_error(exc)
        raise (mapped or ServiceError(_short(exc))) from exc


def parse_version(text: str | int, flag: str = "--version") -> str:
    """Model versions are positive integers; anything else is named as bad input."""
    value = str(text).strip()
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"{flag} must be a positive version number, got {value!r}")
    return str(int(value))


def validate_alias(alias: str, role: str) -> str:
    """Refuse alias names MLflow reserves (``latest``, ``v<digits>``) or cannot store."""
    if not alias or len(alias) > _MAX_ALIAS_LENGTH or not _VALID_ALIAS.match(alias):
        raise BadInput(
            f"{role} alias {alias!r} is not a valid alias name",
            hint="use letters, digits, '-' and '_' only, at most 255 characters",
        )
    if _RESERVED_ALIAS.match(alias):
        raise BadInput(
            f"{role} alias {alias!r} is reserved by MLflow",
            hint="'latest' and 'v<number>' cannot be aliases; pick another name",
        )
    return alias


def get_model(client: "MlflowClient", name: str) -> "RegisteredModel":
    if not name or not name.strip():
        raise BadInput("--model must name a registered model")
    with mlflow_errors(not_found=f"model {name!r} is not registered on this tracking server"):
        return client.get_registered_model(name)


def get_version(client: "MlflowClient", name: str, version: str) -> "ModelVersion":
    """One version, read once; only when it is missing is the model read, to say which is missing."""
    try:
        with mlflow_errors(not_found=f"model {name!r} has no version {version}"):
            return client.get_model_version(name, version)
    except BadInput:
        get_model(client, name)  # raises "model ... is not registered" when that is the cause
        raise


def model_id_of(source: str | None) -> str | None:
    """The MLflow 3 logged-model id of a version registered from ``models:/m-...``, else None."""
    if source and source.startswith("models:/m-"):
        return source.split("/", 1)[1].split("/", 1)[0]
    return None


def experiment_id(client: "MlflowClient", name: str, tags: dict[str, str] | None = None) -> str:
    """The id of an experiment the toolkit writes to, created if missing (a concurrent creator wins)."""
    with mlflow_errors():
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, tags=tags)
            except Exception as exc:  # noqa: BLE001 - a concurrent writer created it first
                if not is_already_exists(exc):
                    raise
                experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage != "active":
        raise BadInput(
            f"the experiment {name!r} is deleted",
            hint=f"restore it with: mlflow experiments restore --experiment-id {experiment.experiment_id}",
        )
    return experiment.experiment_id


def alias_map(model: "RegisteredModel") -> dict[str, str]:
    """Alias -> version as a string (a sqlite-backed client returns ints, REST returns strings)."""
    aliases = model.aliases or {}
    return {alias: str(version) for alias, version in aliases.items()}


def aliases_of(model: "RegisteredModel", version: str) -> list[str]:
    return sorted(alias for alias, v in alias_map(model).items() if v == str(version))


def is_archived(version: "ModelVersion") -> bool:
    return tags.ARCHIVED_AT in (version.tags or {})


def list_versions(client: "MlflowClient", name: str, page_size: int = 1000) -> list["ModelVersion"]:
    """Every version of a model, paged. Only for status and retention: promotions never page."""
    versions: list[ModelVersion] = []
    token = None
    with mlflow_errors():
        while True:
            page = client.search_model_versions(
                filter_string=f"name = '{_quote(name)}'",
                max_results=page_size,
                order_by=["version_number DESC"],
                page_token=token,
            )
            versions.extend(page)
            token = page.token
            if not token:
                break
    return versions


def _quote(value: str) -> str:
    """Escape a value for an MLflow search filter string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
