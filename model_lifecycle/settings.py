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
                            "After how long a model's lock counts as stale (its holder presumed dead).")
LOCK_WAIT_SECONDS = _setting("LIFECYCLE_LOCK_WAIT_SECONDS", None,
                             "How long a step waits for a held lock (default: the TTL plus 30 s).")
WEBHOOK_URL = _setting("LIFECYCLE_WEBHOOK_URL", None, "Slack-compatible webhook for notifications.", secret=True)
VENV = _setting("LIFECYCLE_VENV", None, "The action's virtual environment (default: $RUNNER_TEMP/model-lifecycle-venv).")
DEBUG = _setting("LIFECYCLE_DEBUG", None, "Print a traceback for unexpected errors.")
FAILPOINT = _setting("LIFECYCLE_FAILPOINT", None, "Test hook: `after-commit` kills a change right after its commit.")

# --- MLflow's, with the toolkit's bounded defaults ------------------------------------------------
TRACKING_URI = _setting("MLFLOW_TRACKING_URI", None, "MLflow tracking server (or --tracking-uri).")
TRACKING_TOKEN = _setting("MLFLOW_TRACKING_TOKEN", None, "MLflow bearer token.", secret=True)
HTTP_MAX_RETRIES = _setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2", "MLflow client retries (MLflow's default: 7).")
HTTP_BACKOFF_FACTOR = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1", "MLflow client backoff (MLflow's: 2).")
HTTP_BACKOFF_JITTER = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5", "MLflow client backoff jitter.")
HTTP_TIMEOUT = _setting("MLFLOW_HTTP_REQUEST_TIMEOUT", "30", "MLflow client timeout per request, s (MLflow's: 120).")
MLFLOW_BOUNDED = (HTTP_MAX_RETRIES, HTTP_BACKOFF_FACTOR, HTTP_BACKOFF_JITTER, HTTP_TIMEOUT)

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
GITHUB_OUTPUT = _setting("GITHUB_OUTPUT", None, "Where the action writes its outputs.")
GITHUB_STEP_SUMMARY = _setting("GITHUB_STEP_SUMMARY", None, "Where steps write their job summary.")
RUNNER_TEMP = _setting("RUNNER_TEMP", None, "The runner's temporary folder: the action's output files.")
ACTIONS_STEP_DEBUG = _setting("ACTIONS_STEP_DEBUG", None, "`true`: tracebacks for unexpected errors.")


def in_github_actions() -> bool:
    return GITHUB_ACTIONS.get() == "true"


def bound_mlflow_retries() -> None:
    """MLflow's client retries a dead or 5xx server for about four minutes by default; a step must
    fail within a bounded time instead. Applies the defaults above unless the user set their own."""
    for setting in MLFLOW_BOUNDED:
        os.environ.setdefault(setting.name, setting.default or "")


def markdown_table() -> str:
    """The README's table of settings, generated from this module (a test keeps them equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in ALL:
        default = f"`{setting.default}`" if setting.default else ""
        rows.append(f"| `{setting.name}` | {default} | {setting.doc}{' (secret)' if setting.secret else ''} |")
    return "\n".join(rows)
