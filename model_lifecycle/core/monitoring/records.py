"""Where monitoring keeps what it knows, in MLflow itself: the reference profile as an artifact of
the run that evaluated the version, and each window as a run of the monitoring experiment.

A window's run carries the tags an evaluation run has (model, version) plus the window's start, end,
status and the digest of its findings, and logs its metrics with the window's end as step and
timestamp. The same metrics also go, with the same step, to one series run per version, so the MLflow
UI draws each monitored statistic of a version as a time series.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from model_lifecycle import tags
from model_lifecycle.adapters import registry
from model_lifecycle.core.monitoring import profile as profiles
from model_lifecycle.core.monitoring.history import WindowRecord
from model_lifecycle.errors import BadInput

MONITOR, SERIES = "monitor", "monitor-series"


def store_profile(client: Any, name: str, version: str, run_id: str, profile: dict[str, Any]) -> str:
    """Log the profile into ``run_id`` and point the version at it; returns the profile's digest."""
    text = profiles.to_json(profile)
    digest = profiles.digest(text)
    with registry.mlflow_errors():
        client.log_text(run_id, text, tags.PROFILE_ARTIFACT)
        client.set_model_version_tag(name, version, tags.PROFILE_RUN_ID, run_id)
        client.set_model_version_tag(name, version, tags.PROFILE_SHA256, digest)
    return digest


def load_profile(client: Any, mv: Any) -> dict[str, Any] | None:
    """The version's reference profile, checked against the digest tagged on the version; None if it has none."""
    run_id = (mv.tags or {}).get(tags.PROFILE_RUN_ID)
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="profile-") as folder, registry.mlflow_errors(
            not_found=f"the reference profile of v{mv.version} (run {run_id}) is gone"):
        path = client.download_artifacts(run_id, tags.PROFILE_ARTIFACT, folder)
        text = Path(path).read_text(encoding="utf-8")
    expected = (mv.tags or {}).get(tags.PROFILE_SHA256)
    if expected and profiles.digest(text) != expected:
        raise BadInput(f"the reference profile of v{mv.version} does not match its digest {expected[:12]}…",
                       hint="rebuild it with monitor --reference HOLDOUT")
    return json.loads(text)


def window_history(client: Any, experiment: str, name: str, version: str, limit: int = 500) -> list[WindowRecord]:
    """The recorded windows of one version, newest first."""
    with registry.mlflow_errors():
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=_filter(MONITOR, name, version), max_results=limit, order_by=["attributes.start_time DESC"],
        )
    records = []
    for run in (r for r in runs if r.data.tags.get(tags.RUN_MODEL) == name):
        found_tags = run.data.tags
        try:
            end_ms = int(found_tags.get(tags.RUN_WINDOW_END_MS, "0"))
        except ValueError:
            continue
        records.append(WindowRecord(end_ms, found_tags.get(tags.RUN_WINDOW_STATUS, ""), run.info.run_id,
                                    dict(run.data.metrics)))
    return sorted(records, key=lambda r: r.end_ms, reverse=True)


def log_window(
    client: Any, *, experiment: str, name: str, version: str, start: datetime | None, end: datetime,
    status: str, findings_sha256: str, metrics: dict[str, float], documents: dict[str, str], extra_tags: dict[str, str],
) -> str:
    """One run per window, and the same metrics into the version's series run; returns the window's run id."""
    from mlflow.entities import Metric

    end_ms = int(end.timestamp() * 1000)
    step = int(end.timestamp())  # seconds: the MLflow UI's x-axis by step reads as time
    with registry.mlflow_errors():
        experiment_id = registry.experiment_id(client, experiment)
        series = _series_run(client, experiment_id, name, version)
        run = client.create_run(experiment_id, tags={
            tags.RUN_KIND: MONITOR, tags.RUN_MODEL: name, tags.RUN_VERSION: str(version),
            tags.RUN_WINDOW_START: start.isoformat() if start else "", tags.RUN_WINDOW_END: end.isoformat(),
            tags.RUN_WINDOW_END_MS: str(end_ms), tags.RUN_WINDOW_STATUS: status,
            tags.RUN_FINDINGS_SHA256: findings_sha256, "mlflow.parentRunId": series,
            "mlflow.runName": f"monitor {name} v{version} {end:%Y-%m-%d %H:%M}", **extra_tags,
        })
        entries = [Metric(k, v, end_ms, step) for k, v in metrics.items()]
        for run_id in (run.info.run_id, series):
            for begin in range(0, len(entries), 1000):
                client.log_batch(run_id, metrics=entries[begin: begin + 1000])
        for filename, text in documents.items():
            client.log_text(run.info.run_id, text, filename)
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints a "View run" link
            client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _series_run(client: Any, experiment_id: str, name: str, version: str) -> str:
    """The version's series run (the oldest, should two monitors have created one at once)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=_filter(SERIES, name, version), max_results=50, order_by=["attributes.start_time ASC"],
    )
    runs = [r for r in runs if r.data.tags.get(tags.RUN_MODEL) == name]
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment_id, tags={
        tags.RUN_KIND: SERIES, tags.RUN_MODEL: name, tags.RUN_VERSION: str(version),
        "mlflow.runName": f"monitoring {name} v{version} (time series)"})
    return run.info.run_id


def _filter(kind: str, name: str, version: str) -> str:
    """Runs of one kind for one version; the model name goes in when MLflow's grammar can quote it
    (callers check the name on the runs found either way)."""
    literal = registry.quote_filter_value(name)
    model = f" and tags.`{tags.RUN_MODEL}` = {literal}" if literal else ""
    return f"tags.`{tags.RUN_KIND}` = '{kind}' and tags.`{tags.RUN_VERSION}` = '{version}'{model}"
