"""Lineage facts: content digests of data, the code commit, and where a version came from.

MLflow's own dataset digest is 8 hex characters over the first 10,000 rows only, so a change at row
15,000 keeps it. The toolkit hashes every row instead (sha256 over the columns, dtypes and a hash of
each row) and records that digest in run and version tags.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_lifecycle import settings, tags
from model_lifecycle.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd



def dataframe_sha256(frame: "pd.DataFrame") -> str:
    """A digest of the whole table: column names, dtypes and every row (index ignored)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def mlflow_digest(sha256: str) -> str:
    """MLflow's dataset digest column holds 36 characters on SQL stores: keep 32 hex of the sha256."""
    return sha256.split(":", 1)[-1][:32]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit being built: $GITHUB_SHA on Actions, else ``git rev-parse HEAD`` if in a checkout."""
    if settings.GITHUB_SHA.get():
        return settings.GITHUB_SHA.get()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def pull_request_number(value: Any, flag: str = "--pull-request") -> str:
    """A pull request number as text ("#12" and "012" are 12), or bad input naming ``flag``."""
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"{flag} {value!r} is not a pull request number")
    return str(int(text))


def pull_request() -> tuple[str | None, str | None]:
    """(number, head commit) of the pull request a GitHub Actions run builds (``pull_request`` and
    ``pull_request_target`` events: ``GITHUB_REF`` is ``refs/pull/<n>/merge``, the event payload
    names the head), else (None, None)."""
    import json
    import re

    if settings.GITHUB_EVENT_NAME.get() not in ("pull_request", "pull_request_target"):
        return None, None
    found = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", settings.GITHUB_REF.get() or "")
    number, head = (found.group(1) if found else None), None
    try:
        with open(settings.GITHUB_EVENT_PATH.get() or "", encoding="utf-8") as handle:
            event = (json.load(handle) or {}).get("pull_request") or {}
        number = number or (str(event["number"]) if str(event.get("number", "")).isdigit() else None)
        head = (event.get("head") or {}).get("sha") or None
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return number, head


def dataset_facts(run: Any) -> dict[str, dict[str, str]]:
    """Datasets a training run logged: name -> {sha256, rows, context, mlflow_digest, source}.

    Prefers the full sha256 that train.py writes to run tags; falls back to MLflow's own digest
    (marked as such) for runs logged by other code.
    """
    facts: dict[str, dict[str, str]] = {}
    run_tags = run.data.tags or {}
    for key, value in run_tags.items():
        parts = key.split(".")
        if key.startswith(tags.DATASET_PREFIX) and len(parts) >= 4:
            name, field = ".".join(parts[2:-1]), parts[-1]
            facts.setdefault(name, {})[field] = value
    for dataset_input in getattr(run.inputs, "dataset_inputs", None) or []:
        dataset = dataset_input.dataset
        entry = facts.setdefault(dataset.name, {})
        entry.setdefault("mlflow_digest", dataset.digest)
        context = next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), None)
        if context:
            entry.setdefault("context", context)
    return facts
