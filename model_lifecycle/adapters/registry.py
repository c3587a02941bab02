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
    fall back to a local ./mlruns by accident, and names a malformed URI as bad input."""
    tracking_uri = (tracking_uri or settings.TRACKING_URI.get() or "").strip()
    if not tracking_uri:
        raise BadInput(
            "no tracking server given",
            hint="pass --tracking-uri or set MLFLOW_TRACKING_URI",
        )
    validate_tracking_uri(tracking_uri)
    try:
        settings.mlflow_budget_seconds()
    except ValueError as exc:
        raise BadInput(str(exc), hint="the default is 30") from None
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# Schemes MLflow 3.17 opens as a tracking and registry store; a database scheme may name its
# driver (postgresql+psycopg2). Plugins add theirs through entry points (see _plugin_schemes).
_KNOWN_SCHEMES = frozenset({"http", "https", "file", "sqlite", "postgresql", "mysql", "mssql",
                            "databricks", "databricks-uc", "uc"})
_BARE_URIS = frozenset({"databricks", "databricks-uc", "uc"})  # MLflow accepts these without '://'
_URI_FLAG = "--tracking-uri / MLFLOW_TRACKING_URI"


def validate_tracking_uri(uri: str) -> str:
    """A tracking URI MLflow can open, or BadInput naming --tracking-uri / MLFLOW_TRACKING_URI.

    Refused: no scheme (MLflow would read it as a local folder, e.g. ``localhost:5000``), a scheme
    MLflow does not know (``htp://``), and for http(s) a missing host or a missing, malformed or
    out-of-range port (``http://127.0.0.1:``), which MLflow reports as a server failure instead."""
    from urllib.parse import urlsplit

    example = "e.g. http://127.0.0.1:5000 or https://mlflow.example.com"
    if uri in _BARE_URIS:
        return uri
    if any(c.isspace() for c in uri):
        raise BadInput(f"{_URI_FLAG} {uri!r} contains whitespace", hint=example)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in uri and scheme not in ("file", "sqlite"):
        raise BadInput(
            f"{_URI_FLAG} {uri!r} has no scheme: MLflow would treat it as a local folder",
            hint=f"give the server's URL, {example}; for a local store say so: file:///path or sqlite:///path.db",
        )
    if scheme.split("+", 1)[0] not in _KNOWN_SCHEMES | _plugin_schemes():
        raise BadInput(
            f"{_URI_FLAG} {uri!r} has an unknown scheme {parts.scheme!r}",
            hint=f"use http or https: {example}",
        )
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise BadInput(f"{_URI_FLAG} {uri!r} names no host", hint=example)
        try:
            port = parts.port
        except ValueError:
            raise BadInput(f"{_URI_FLAG} {uri!r} has an invalid port (1-65535)", hint=example) from None
        if parts.netloc.endswith(":"):
            raise BadInput(f"{_URI_FLAG} {uri!r} has no port after ':'", hint=example)
        if port == 0:
            raise BadInput(f"{_URI_FLAG} {uri!r} has an invalid port (1-65535)", hint=example)
    return uri


def _plugin_schemes() -> frozenset[str]:
    """Schemes that installed MLflow plugins register (read from entry points, nothing imported)."""
    from importlib.metadata import entry_points

    return frozenset(
        entry.name.lower()
        for group in ("mlflow.tracking_store", "mlflow.model_registry_store")
        for entry in entry_points(group=group)
    )


# The MlflowClient methods the toolkit calls on ``writer(client)``, each with the parameters it
# passes, in order (core/lifecycle.py and core/claims.py). Shared with tests/test_mlflow_contract.py,
# which fails naming the installed MLflow when the private registry client stops matching.
WRITER_METHODS: dict[str, tuple[str, ...]] = {
    "set_registered_model_alias": ("name", "alias", "version"),
    "delete_registered_model_alias": ("name", "alias"),
    "set_model_version_tag": ("name", "version", "key", "value"),
    "delete_model_version_tag": ("name", "version", "key"),
    "transition_model_version_stage": ("name", "version", "stage", "archive_existing_versions"),
    "set_registered_model_tag": ("name", "key", "value"),
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
    answered = _non_json_answer(text)
    if answered is not None:
        return answered
    if text.startswith("API request to") or "Max retries exceeded" in text:
        if "timed out" in text or "timeout" in text.lower():
            return ServiceError(
                f"tracking server did not answer: {_attempts_text()} timed out: {_short(exc)}",
                hint=f"check the server; if it is healthy but slow, raise LIFECYCLE_MLFLOW_BUDGET_SECONDS "
                f"(now {_budget_text()})",
            )
        return ServiceError(
            f"tracking server failed after bounded retries: {_short(exc)}",
            hint=f"check that the server runs at {_URI_FLAG}; LIFECYCLE_MLFLOW_BUDGET_SECONDS "
            f"({_budget_text()}) bounds how long a step waits for it",
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


_NON_JSON = re.compile(
    r"^API request to endpoint (?:(?P<endpoint>\S+) failed with error code (?P<status>\d+) != \d+|"
    r"was successful but the response body was not in a valid JSON format)\. Response body: '(?P<body>.*)'$",
    re.DOTALL,
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _non_json_answer(text: str) -> ToolkitError | None:
    """An answer that is not MLflow's JSON, named by what it is: an HTML page means a login page or
    a proxy answered instead of MLflow, which no retry fixes. None for any other error."""
    match = _NON_JSON.match(text)
    if not match:
        return None
    status, body = int(match["status"] or 200), match["body"].strip()
    if body.startswith("<"):
        title = _TITLE.search(body)
        what = "an HTML page" + (f" ({' '.join(title.group(1).split())[:80]!r})" if title else "")
        what += " (a login page or a proxy in front of MLflow?)"
    else:
        what = f"{' '.join(body.split())[:80]!r}" if body else "an empty body"
    where = f"the tracking server answered {status} with {what} instead of MLflow's JSON API"
    if status in (401, 403):
        return ServiceError(
            f"{where}: the credentials were refused",
            hint="give the credentials it expects (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD)",
        )
    if status >= 500 or status == 429:
        return ServiceError(f"{where}, also after bounded retries", hint="check the server and any proxy in front of it")
    return ServiceError(
        f"{where}; retrying does not fix that",
        hint=f"point {_URI_FLAG} at the MLflow server itself (with its base path, if any), or give the "
        "credentials its proxy expects (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD)",
    )


def _attempts_text() -> str:
    """The client's attempts as MLflow ran them, e.g. "2 attempts of 15 s"."""
    try:
        attempts = int(settings.HTTP_MAX_RETRIES.get() or 0) + 1
        return f"{attempts} attempt{'s' if attempts > 1 else ''} of {int(settings.HTTP_TIMEOUT.get() or 0)} s"
    except ValueError:
        return "every attempt"


def _budget_text() -> str:
    try:
        return f"{settings.mlflow_budget_seconds():g} s"
    except ValueError:
        return f"{settings.DEFAULT_MLFLOW_BUDGET_SECONDS} s"


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", "")
    return str(code)


def is_not_found(exc: BaseException) -> bool:
    """Not found; MLflow reports a missing alias as INVALID_PARAMETER_VALUE "... alias X not found"."""
    code = _error_code(exc)
    return ("RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code
            or ("INVALID_PARAMETER_VALUE" in code and "alias" in str(exc) and "not found" in str(exc)))


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


# MLflow stores a version number as a 32-bit int: a larger one makes the server answer 500.
MAX_VERSION = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() accepts '²', which int() refuses


def version_problem(text: str | int) -> str | None:
    """What is wrong with ``text`` as a model version ("must be ..., got ..."), or None."""
    value = str(text).strip()
    shown = repr(value if len(value) <= 40 else value[:37] + "...")
    if not _DIGITS.fullmatch(value) or not value.strip("0"):
        return f"must be a positive version number, got {shown}"
    if len(value.lstrip("0")) > len(str(MAX_VERSION)) or int(value) > MAX_VERSION:
        return f"must be a version number from 1 to {MAX_VERSION}, got {shown}"
    return None


def parse_version(text: str | int, flag: str = "--version") -> str:
    """Model versions are positive integers MLflow can store; anything else is named as bad input."""
    problem = version_problem(text)
    if problem:
        raise BadInput(f"{flag} {problem}")
    return str(int(str(text).strip()))


def version_arg(text: str) -> str:
    """argparse ``type=`` of a version flag: a usage error (exit 2) that argparse prefixes with the flag."""
    problem = version_problem(text)
    if problem:
        import argparse

        raise argparse.ArgumentTypeError(problem)
    return str(int(text.strip()))


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


def list_versions(client: "MlflowClient", name: str, page_size: int = 1000,
                  tag: tuple[str, str] | None = None) -> list["ModelVersion"]:
    """Every version of a model (with ``tag``: those whose tag KEY has VALUE, a value without quotes),
    paged. Only for status, retention and releases: promotions never page."""
    versions: list[ModelVersion] = []
    token = None
    wanted = name_filter(name)
    if tag is not None:
        wanted += f" AND tags.`{tag[0]}` = '{tag[1]}'"
    with mlflow_errors():
        while True:
            page = client.search_model_versions(
                filter_string=wanted,
                max_results=page_size,
                order_by=["version_number DESC"],
                page_token=token,
            )
            versions.extend(v for v in page if v.name == name  # a LIKE filter may match others
                            and (tag is None or (v.tags or {}).get(tag[0]) == tag[1]))
            token = page.token
            if not token:
                break
    return versions


def quote_filter_value(value: str) -> str | None:
    """``value`` as a string literal of MLflow's search-filter grammar, or None if it cannot be one.

    MLflow (``mlflow/utils/search_utils.py``) lets sqlparse find the literal and then only cuts off
    its two quotes: there are no escape sequences. ``\\'`` and ``''`` reach the database as they
    are, and a backslash is an ordinary character. So a value without ``'`` goes in single quotes, a
    value with ``'`` but no ``"`` in double quotes, and a value with both quote characters has no
    literal at all (checked against a real server in tests/test_relay.py)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def name_filter(name: str) -> str:
    """A ``search_model_versions`` filter that finds the versions of model ``name``.

    The one place that quotes a name for MLflow. A name holding both quote characters cannot be
    written as a literal; it becomes ``name LIKE '...'`` with ``_`` (any one character) in place of
    each ``'`` and backslash (LIKE's escape character on PostgreSQL and MySQL), which may match
    other models too: callers keep only versions whose ``name`` is ``name``."""
    quoted = quote_filter_value(name)
    if quoted is not None:
        return f"name = {quoted}"
    pattern = "".join("_" if char in "'\\" else char for char in name)
    return f"name LIKE '{pattern}'"
