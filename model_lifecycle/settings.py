"""Every setting read from the environment: name, default and meaning, declared once.

Code reads a setting through its constant (``settings.LOCK_TTL_SECONDS.get()``), never through
``os.environ`` directly, so this table is complete; the README's table of settings is checked
against it by a test (as MLflow does with ``mlflow/environment_variables.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from model_lifecycle import tags


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    doc: str
    secret: bool = False

    def get(self) -> str | None:
        """The value, or the default when unset or empty (an empty action input means unset)."""
        value = os.environ.get(self.name)
        return value if value not in (None, "") else self.default

    def get_float(self) -> float:
        return float(self.get() or 0)

    def is_set(self) -> bool:
        return os.environ.get(self.name) not in (None, "")


_MIN_FITTED_TIMEOUT = 10  # s: below this, fewer attempts with longer timeouts fit the budget better
_MAX_FITTED_TIMEOUT = 120  # s: MLflow's own default timeout
_MAX_FITTED_ATTEMPTS = 3


def mlflow_backoff_seconds(attempts: int, backoff_factor: float, jitter: float) -> float:
    """The most the client sleeps between ``attempts`` attempts (urllib3 2: no sleep before the
    first retry, then factor x 2^(k-1) plus up to ``jitter`` before retry k)."""
    return sum(backoff_factor * 2 ** (k - 1) + jitter for k in range(2, attempts))


def mlflow_worst_case_seconds(retries: int, timeout: float, backoff_factor: float, jitter: float) -> float:
    """How long one request may take against a server that accepts and never answers."""
    return (retries + 1) * timeout + mlflow_backoff_seconds(retries + 1, backoff_factor, jitter)


def fit_mlflow_retries(budget: float, retries: int | None = None, timeout: int | None = None,
                       backoff_factor: float = 1, jitter: float = 0.5) -> tuple[int, int]:
    """(retries, timeout) whose worst case stays within ``budget``; a given value is kept as given.

    The most attempts (up to 3) whose timeout is still at least 10 s; a budget too small for two
    such attempts gets one attempt with the whole budget as its timeout."""

    def timeout_for(attempts: int) -> int:
        fitted = int((budget - mlflow_backoff_seconds(attempts, backoff_factor, jitter)) // attempts)
        return max(1, min(_MAX_FITTED_TIMEOUT, fitted))

    if retries is not None:
        return retries, timeout if timeout is not None else timeout_for(retries + 1)
    for attempts in range(_MAX_FITTED_ATTEMPTS, 0, -1):
        if timeout is not None:
            if mlflow_worst_case_seconds(attempts - 1, timeout, backoff_factor, jitter) <= budget:
                return attempts - 1, timeout
        elif timeout_for(attempts) >= _MIN_FITTED_TIMEOUT or attempts == 1:
            return attempts - 1, timeout_for(attempts)
    return 0, timeout if timeout is not None else timeout_for(1)


ALL: list[Setting] = []


def _setting(name: str, default: str | None, doc: str, secret: bool = False) -> Setting:
    setting = Setting(name, default, doc, secret)
    ALL.append(setting)
    return setting


# --- the toolkit's own --------------------------------------------------------------------------
CHAMPION_ALIAS = _setting("LIFECYCLE_CHAMPION_ALIAS", tags.CHAMPION_ALIAS, "Alias that serves production.")
CHALLENGER_ALIAS = _setting("LIFECYCLE_CHALLENGER_ALIAS", tags.CHALLENGER_ALIAS, "Alias of the staged candidate.")
PREVIOUS_ALIAS = _setting("LIFECYCLE_PREVIOUS_ALIAS", tags.PREVIOUS_ALIAS,
                          "Alias that keeps the previous champion reachable for rollback.")
LOCK_TTL_SECONDS = _setting("LIFECYCLE_LOCK_TTL_SECONDS", "120",
                            "After how long a claimed change counts as stale (its holder presumed dead).")
LOCK_WAIT_SECONDS = _setting("LIFECYCLE_LOCK_WAIT_SECONDS", None,
                             "How long a step waits for another change in progress (default: the TTL plus 30 s).")
WEBHOOK_URL = _setting("LIFECYCLE_WEBHOOK_URL", None, "Slack-compatible webhook for notifications.", secret=True)
VENV = _setting("LIFECYCLE_VENV", None, "The action's virtual environment (default: $RUNNER_TEMP/model-lifecycle-venv).")
TESTS_VENV = _setting("LIFECYCLE_TESTS_VENV", None,
                      "A prepared environment for the repository's tests: used as it is, tests.requirements not installed.")
DEBUG = _setting("LIFECYCLE_DEBUG", None, "Print a traceback for unexpected errors.")
FAILPOINT = _setting("LIFECYCLE_FAILPOINT", None, "Test hook: `after-claim`, `after-commit` or `before-seq` kills a change there.")
SPARK_MASTER = _setting("LIFECYCLE_SPARK_MASTER", None,
                        "Spark master for `--engine spark` when no Spark session is running (default: Spark's own: "
                        "spark-submit's `--master` or spark-defaults.conf, else `local[*]`).")

# --- MLflow's, with the toolkit's bounded defaults ------------------------------------------------
# A step gives each MLflow request one time budget; the client's attempts x timeout + backoff are
# fitted into it by bound_mlflow_retries() (the defaults shown are the fit of the default budget).
DEFAULT_MLFLOW_BUDGET_SECONDS = 30
MLFLOW_BUDGET_SECONDS = _setting(
    "LIFECYCLE_MLFLOW_BUDGET_SECONDS", str(DEFAULT_MLFLOW_BUDGET_SECONDS),
    "Longest a step waits for one MLflow request, s, all retries included; MLflow's retry settings are "
    "fitted to it unless you set them.")
TRACKING_URI = _setting("MLFLOW_TRACKING_URI", None, "MLflow tracking server (or --tracking-uri).")
DISABLE_TELEMETRY = _setting(
    "MLFLOW_DISABLE_TELEMETRY", "true",
    "MLflow's usage telemetry: off unless you set `false` (its thread edits the environment while a "
    "request reads it, seen failing 1 promotion in 100).")
TRACKING_TOKEN = _setting("MLFLOW_TRACKING_TOKEN", None, "MLflow bearer token.", secret=True)
TRACKING_USERNAME = _setting("MLFLOW_TRACKING_USERNAME", None, "MLflow basic-auth user (with the password).", secret=True)
TRACKING_PASSWORD = _setting("MLFLOW_TRACKING_PASSWORD", None, "MLflow basic-auth password.", secret=True)
_DEFAULT_FIT = fit_mlflow_retries(DEFAULT_MLFLOW_BUDGET_SECONDS)  # (1, 15): 15 s + 15 s, no backoff
HTTP_MAX_RETRIES = _setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(_DEFAULT_FIT[0]),
                            "MLflow client retries (default: fitted to the budget; MLflow's: 7).")
HTTP_BACKOFF_FACTOR = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1", "MLflow client backoff (MLflow's: 2).")
HTTP_BACKOFF_JITTER = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5", "MLflow client backoff jitter, s.")
HTTP_TIMEOUT = _setting("MLFLOW_HTTP_REQUEST_TIMEOUT", str(_DEFAULT_FIT[1]),
                        "MLflow client timeout per attempt, s (default: fitted to the budget; MLflow's: 120).")
HTTP_RESPECT_RETRY_AFTER = _setting(
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER", "false",
    "Sleep as long as a server's Retry-After asks (MLflow's: true; unbounded, so off within the budget).")
MLFLOW_BOUNDED = (HTTP_MAX_RETRIES, HTTP_BACKOFF_FACTOR, HTTP_BACKOFF_JITTER, HTTP_TIMEOUT, HTTP_RESPECT_RETRY_AFTER)

# --- GitHub Actions' (read, never set) ----------------------------------------------------------
GITHUB_ACTIONS = _setting("GITHUB_ACTIONS", None, "`true` under GitHub Actions: annotations and job summary.")
GITHUB_TOKEN = _setting("GITHUB_TOKEN", None, "Token for GitHub's API.", secret=True)
GITHUB_API_URL = _setting("GITHUB_API_URL", "https://api.github.com", "GitHub's REST API (GHES: your server's).")
GITHUB_SERVER_URL = _setting("GITHUB_SERVER_URL", None, "GitHub's web address, for run links.")
GITHUB_REPOSITORY = _setting("GITHUB_REPOSITORY", None, "OWNER/REPO of the run.")
GITHUB_RUN_ID = _setting("GITHUB_RUN_ID", None, "The workflow run whose approvals are the human gate.")
GITHUB_RUN_ATTEMPT = _setting("GITHUB_RUN_ATTEMPT", None, "Attempt of the run, for run links.")
GITHUB_ACTOR = _setting("GITHUB_ACTOR", None, "Who triggered the run: the audit record's actor.")
GITHUB_SHA = _setting("GITHUB_SHA", None, "The commit being built: lineage of a registered version.")
GITHUB_EVENT_NAME = _setting("GITHUB_EVENT_NAME", None,
                             "The run's event: a version registered under `pull_request` is a candidate.")
GITHUB_REF = _setting("GITHUB_REF", None,
                      "The run's ref: `refs/pull/<n>/merge` names a candidate's pull request (else the event payload).")
GITHUB_EVENT_PATH = _setting("GITHUB_EVENT_PATH", None,
                             "The run's event payload: a pull request's head commit, recorded with its candidate.")
GITHUB_OUTPUT = _setting("GITHUB_OUTPUT", None, "Where the action writes its outputs.")
GITHUB_STEP_SUMMARY = _setting("GITHUB_STEP_SUMMARY", None, "Where steps write their job summary.")
RUNNER_TEMP = _setting("RUNNER_TEMP", None, "The runner's temporary folder: the action's output files.")
ACTIONS_STEP_DEBUG = _setting("ACTIONS_STEP_DEBUG", None, "`true`: tracebacks for unexpected errors.")


def in_github_actions() -> bool:
    return GITHUB_ACTIONS.get() == "true"


# What bound_mlflow_retries() itself wrote ("NAME=value;..."), so that a later call, or a child
# process inheriting the environment, tells its own fitted values from values a user set.
_FITTED_MARKER = "_LIFECYCLE_MLFLOW_HTTP_FITTED"
def mlflow_budget_seconds() -> float:
    """LIFECYCLE_MLFLOW_BUDGET_SECONDS as a number; ValueError naming it when it is not one, or < 1."""
    text = MLFLOW_BUDGET_SECONDS.get() or ""
    try:
        budget = float(text)
    except ValueError:
        budget = float("nan")
    if not (1 <= budget < float("inf")):
        raise ValueError(f"{MLFLOW_BUDGET_SECONDS.name} must be a number of seconds, 1 or more, got {text!r}")
    return budget


def _number(text: str | None, kind: type, fallback: float) -> float:
    try:
        return kind(text)
    except (TypeError, ValueError):
        return fallback  # MLflow itself names a malformed value of its own variable


def bound_mlflow_retries() -> None:
    """MLflow's client retries a dead or 5xx server for about four minutes by default, and waits
    120 s for each answer; a step must fail within LIFECYCLE_MLFLOW_BUDGET_SECONDS instead. Fits
    MLflow's retries and timeout to that budget, except where the user set MLflow's variables.
    Never raises: a malformed budget falls back to the default here and is reported as bad input
    by ``registry.connect``. Also turns MLflow's telemetry off unless the user set it."""
    os.environ.setdefault(DISABLE_TELEMETRY.name, DISABLE_TELEMETRY.default or "true")
    fitted_before = dict(
        item.split("=", 1) for item in (os.environ.get(_FITTED_MARKER) or "").split(";") if "=" in item
    )

    def user_value(setting: Setting) -> str | None:
        value = os.environ.get(setting.name)
        if value in (None, "") or fitted_before.get(setting.name) == value:
            return None
        return value

    try:
        budget = mlflow_budget_seconds()
    except ValueError:
        budget = DEFAULT_MLFLOW_BUDGET_SECONDS
    backoff_factor = user_value(HTTP_BACKOFF_FACTOR) or HTTP_BACKOFF_FACTOR.default
    jitter = user_value(HTTP_BACKOFF_JITTER) or HTTP_BACKOFF_JITTER.default
    user_retries, user_timeout = user_value(HTTP_MAX_RETRIES), user_value(HTTP_TIMEOUT)
    retries, timeout = fit_mlflow_retries(
        budget,
        retries=None if user_retries is None else int(_number(user_retries, int, 0)),
        timeout=None if user_timeout is None else int(_number(user_timeout, int, 1)),
        backoff_factor=_number(backoff_factor, float, 1), jitter=_number(jitter, float, 0.5),
    )
    fitted = {
        HTTP_MAX_RETRIES.name: str(retries), HTTP_TIMEOUT.name: str(timeout),
        HTTP_BACKOFF_FACTOR.name: str(backoff_factor), HTTP_BACKOFF_JITTER.name: str(jitter),
        HTTP_RESPECT_RETRY_AFTER.name: HTTP_RESPECT_RETRY_AFTER.default or "",
    }
    ours = {}
    for setting in MLFLOW_BOUNDED:
        if user_value(setting) is None:
            os.environ[setting.name] = ours[setting.name] = fitted[setting.name]
    os.environ[_FITTED_MARKER] = ";".join(f"{k}={v}" for k, v in ours.items())


def markdown_table() -> str:
    """The README's table of settings, generated from this module (a test keeps them equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in ALL:
        default = f"`{setting.default}`" if setting.default else ""
        rows.append(f"| `{setting.name}` | {default} | {setting.doc}{' (secret)' if setting.secret else ''} |")
    return "\n".join(rows)
