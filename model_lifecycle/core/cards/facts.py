"""What MLflow knows about a version, gathered into the card's ``facts`` so the card states them rather
than the team: registry facts, signature, params, dataset digests, the latest evaluation, the verdict."""

from __future__ import annotations

import re
from typing import Any

from model_lifecycle.tags import (
    DATASET_PREFIX,
    GIT_COMMIT,
    LAST_EVALUATION_RUN_ID,
    LAST_EVALUATION_TIME,
    RUN_HOLDOUT_SHA256,
    VERDICT_PASSED,
    VERDICT_RUN_ID,
    VERDICT_SHA256,
)


def collect_facts(client: Any, name: str, version: str, mv: Any = None) -> dict[str, Any]:
    """Registry facts, signature, params, dataset digests, latest evaluation and verdict of a version
    (``mv``: the version when the caller has already read it)."""
    import mlflow
    from mlflow.models import Model

    from model_lifecycle.adapters import registry

    mv = mv or registry.get_version(client, name, version)
    tags = mv.tags or {}
    model_id = registry.model_id_of(mv.source)
    facts: dict[str, Any] = {
        "registry": {
            "registered_model": name, "version": str(mv.version), "source": mv.source, "run_id": mv.run_id,
            "model_id": model_id, "created": mv.creation_timestamp,
        },
        "datasets": {
            key[len(DATASET_PREFIX):].split(".")[0]: {"sha256": value, "rows": tags.get(key.replace(".sha256", ".rows"))}
            for key, value in sorted(tags.items())
            if key.startswith(DATASET_PREFIX) and key.endswith(".sha256")
        },
        "git_commit": tags.get(GIT_COMMIT),
    }
    with registry.mlflow_errors():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}/MLmodel")
        info = Model.load(local)
        facts["signature"] = info.signature.to_dict() if info.signature else None
        facts["flavors"] = sorted(info.flavors)
        if mv.run_id:
            run = client.get_run(mv.run_id)
            facts["params"] = dict(sorted(run.data.params.items()))
        evaluation_run = tags.get(LAST_EVALUATION_RUN_ID)
        facts["evaluation"] = _evaluation_facts(client, evaluation_run, tags) if evaluation_run else None
    facts["verdict"] = (
        {"sha256": tags[VERDICT_SHA256], "passed": tags.get(VERDICT_PASSED) == "true",
         "run_id": tags.get(VERDICT_RUN_ID)}
        if VERDICT_SHA256 in tags else None
    )
    return facts


def _evaluation_facts(client: Any, run_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The latest evaluation's metrics, regrouped: overall and each slice with n and intervals."""
    run = client.get_run(run_id)
    metrics = run.data.metrics
    slices: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        metric, _, slice_key = key.partition("/")
        slice_key = slice_key or "overall"
        entry = slices.setdefault(slice_key, {"n": None, "metrics": {}})
        if metric == "support":
            entry["n"] = int(value)
            continue
        base = re.sub(r"_ci_(low|high)$", "", metric)
        stats = entry["metrics"].setdefault(base, {})
        stats["ci_low" if metric.endswith("_ci_low") else "ci_high" if metric.endswith("_ci_high") else "value"] = value
    return {
        "run_id": run_id,
        "time": int(tags.get(LAST_EVALUATION_TIME, run.info.start_time)),
        "holdout_sha256": run.data.tags.get(RUN_HOLDOUT_SHA256),
        "slices": {k: slices[k] for k in sorted(slices, key=lambda k: (k != "overall", k))},
    }
