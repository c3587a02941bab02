"""Every tag key the toolkit writes or reads, and every alias default: defined here once.

All tags live under ``lifecycle.`` so a team can tell them from its own. A step that writes a tag
and another that reads it (the gate writes the verdict, the card gate and the promotion read it)
name the same constant, so a renamed key cannot leave a silent reader behind.
"""

from __future__ import annotations

PREFIX = "lifecycle."

# --- aliases (defaults; each can be renamed per team through settings) -------------------------
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
PREVIOUS_ALIAS = "previous-champion"

# --- version tags: state -------------------------------------------------------------------------
ARCHIVED_AT = "lifecycle.archived_at"
ARCHIVE_REASON = "lifecycle.archive_reason"
CHAMPION_SINCE = "lifecycle.champion_since"  # set the first time a version becomes champion

# --- version tags: lineage (register) ----------------------------------------------------------
TRAINING_RUN_ID = "lifecycle.training_run_id"
GIT_COMMIT = "lifecycle.git_commit"  # also a run tag written by the example training
GITHUB_RUN_URL = "lifecycle.github_run_url"
REGISTERED_BY = "lifecycle.registered_by"
# The pull request whose run registered the version (its number): a candidate under review. The relay
# does not announce it; the pull request's merge releases it (release_candidate.py).
PULL_REQUEST = "lifecycle.pull_request"
PULL_REQUEST_HEAD = "lifecycle.pull_request.head_sha"  # the pull request's head commit the candidate was built from
# When the candidate was released (sent to the registration workflow): a re-run of the release sends nothing
PULL_REQUEST_RELEASED_AT = "lifecycle.pull_request.released_at"
DATASET_PREFIX = "lifecycle.dataset."


def dataset(name: str, field: str) -> str:
    """``lifecycle.dataset.<name>.<field>``: sha256, rows, context or mlflow_digest of a data set."""
    return f"{DATASET_PREFIX}{name}.{field}"


# --- version tags: the gate's verdict (written by compare, read by stage, promote and cards) -----
VERDICT_SHA256 = "lifecycle.verdict.sha256"
VERDICT_PASSED = "lifecycle.verdict.passed"
VERDICT_RUN_ID = "lifecycle.verdict.run_id"
VERDICT_BASELINE = "lifecycle.verdict.baseline"  # the champion version the verdict compared with, or none

# --- version tags: evaluation -------------------------------------------------------------------
LAST_EVALUATION_RUN_ID = "lifecycle.last_evaluation_run_id"
LAST_EVALUATION_TIME = "lifecycle.last_evaluation_time"

# --- version tags: model card ---------------------------------------------------------------------
CARD_SHA256 = "lifecycle.card.sha256"
CARD_URI = "lifecycle.card.uri"
CARD_SCHEMA_VERSION = "lifecycle.card.schema_version"
CARD_STATUS = "lifecycle.card.status"
CARD_COMPLETE = "lifecycle.card.complete"
CARD_BUILT_AT = "lifecycle.card.built_at"

# --- run tags of evaluation runs ------------------------------------------------------------------
RUN_MODEL = "lifecycle.model"
RUN_VERSION = "lifecycle.version"
RUN_MODEL_URI = "lifecycle.model_uri"
RUN_HOLDOUT_ROWS = "lifecycle.holdout.rows"
RUN_HOLDOUT_SHA256 = "lifecycle.holdout.sha256"

# --- the audit record -----------------------------------------------------------------------------
AUDIT_RUN = "lifecycle.audit_run_id"  # registered-model tag: the model's audit run
AUDIT_MODEL = "lifecycle.audit_model"  # run tag: which model an audit run records
EXPERIMENT_PURPOSE = "lifecycle.purpose"

# --- the change sequence (core/claims.py) ------------------------------------------------------------
CHANGE_SEQ = "lifecycle.change_seq"  # registered-model tag: the number of the model's last complete change

# --- version tags: the staging deployment check (written by stage-check, read by promote and cards) --
STAGING_PASSED = "lifecycle.staging.passed"
STAGING_SHA256 = "lifecycle.staging.sha256"

# --- monitoring (core/monitoring): the reference profile and each production window ------------------
PROFILE_RUN_ID = "lifecycle.profile.run_id"  # version tag: the run holding the version's reference profile
PROFILE_SHA256 = "lifecycle.profile.sha256"
PROFILE_ARTIFACT = "reference_profile.json"  # artifact path of the profile in that run
MONITOR_STATUS = "lifecycle.monitor.status"  # version tag: healthy, warning, breach or insufficient_data
MONITOR_LAST_RUN_ID = "lifecycle.monitor.last_run_id"
MONITOR_LAST_WINDOW_END = "lifecycle.monitor.last_window_end"  # ISO time of the last window's end
RUN_KIND = "lifecycle.run_kind"  # run tag: monitor (one window) or monitor-series (a version's time series)
RUN_WINDOW_START = "lifecycle.window.start"  # run tags of a monitoring window (ISO times, UTC)
RUN_WINDOW_END = "lifecycle.window.end"
RUN_WINDOW_END_MS = "lifecycle.window.end_ms"
RUN_WINDOW_STATUS = "lifecycle.window.status"
RUN_FINDINGS_SHA256 = "lifecycle.window.findings_sha256"
RUN_WINDOW_ACTION = "lifecycle.window.action"  # none, notify, rollback, rollback-refused, cool-down
