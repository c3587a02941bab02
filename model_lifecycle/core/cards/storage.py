"""A card lives with its version: stored as MLflow artifacts, pinned by tags (digest, URI, completeness),
read back only if its digest still matches, and checked there as the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_lifecycle.core.cards.facts import collect_facts
from model_lifecycle.core.cards.render import canonical, sha256, status
from model_lifecycle.core.cards.rules import check, missing_fields
from model_lifecycle.tags import (
    CARD_BUILT_AT,
    CARD_COMPLETE,
    CARD_SCHEMA_VERSION,
    CARD_SHA256,
    CARD_STATUS,
    CARD_URI,
)

# Kept for importers of the single-module ``cards``; the keys are defined in model_lifecycle.tags.
TAG_SHA = CARD_SHA256
TAG_URI = CARD_URI


def store(client: Any, card: dict[str, Any], markdown: str) -> dict[str, Any]:
    """Store card.json and card.md as artifacts of the version's model, then tag the version.

    MLflow 3 logged models (``models:/m-...``) get them under ``model_card/<name>/v<version>/``
    in the model's own artifacts; versions registered from a run get them in the run's artifacts.
    Returns the URI, the digest, and the completeness recorded in the tags (``complete``, ``missing``).
    """
    import tempfile

    registry = card["facts"]["registry"]
    name, version = registry["registered_model"], registry["version"]
    subpath = f"model_card/{name}/v{version}"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "card.json").write_text(canonical(card), encoding="utf-8")
        Path(tmp, "card.md").write_text(markdown, encoding="utf-8")
        if registry.get("model_id"):
            client.log_model_artifacts(registry["model_id"], tmp, subpath)
            location = client.get_logged_model(registry["model_id"]).artifact_location
            uri = f"{location.rstrip('/')}/{subpath}"
        else:
            client.log_artifacts(registry["run_id"], tmp, subpath)
            uri = f"runs:/{registry['run_id']}/{subpath}"
    digest = sha256(card)
    missing = missing_fields(card["team"], card["facts"])
    complete = not missing
    tags = {CARD_SHA256: digest, CARD_URI: uri, CARD_SCHEMA_VERSION: str(card["schema_version"]),
            CARD_STATUS: status(card), CARD_COMPLETE: str(complete).lower(),
            CARD_BUILT_AT: str(card["built_at"])}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    summary = (card["team"]["model_details"].get("summary") or "").strip().splitlines()
    client.update_model_version(
        name, version,
        description=(f"{summary[0] if summary else 'No summary yet.'}\n\n"
                     f"Model card ({status(card)}, {'complete' if complete else 'incomplete'}): {uri}/card.md "
                     f"({digest[:19]}…)"),
    )
    return {"uri": uri, "sha256": digest, "complete": complete, "missing": missing}


def load_stored(client: Any, name: str, version: str, mv: Any = None) -> dict[str, Any] | None:
    """The card stored with a version, or None if none was built. Its digest is verified."""
    import tempfile

    import mlflow

    from model_lifecycle.adapters import registry
    from model_lifecycle.errors import Refused

    tags = (mv or registry.get_version(client, name, version)).tags or {}
    if CARD_URI not in tags:
        return None
    with tempfile.TemporaryDirectory() as tmp, registry.mlflow_errors():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{tags[CARD_URI]}/card.json", dst_path=tmp)
        card = json.loads(Path(local).read_text(encoding="utf-8"))
    if sha256(card) != tags.get(CARD_SHA256):
        raise Refused(f"the stored card of {name!r} v{version} does not match its sha256 tag: it was altered")
    return card


def check_version(client: Any, name: str, version: str,
                  mv: Any = None) -> tuple[dict[str, Any] | None, list[str]]:
    """The completeness gate for one version: (card, problems); no problems means it may be promoted.
    ``mv``: the version as the caller already read it (the promotion reads it once)."""
    from model_lifecycle.adapters import registry

    mv = mv if mv is not None else registry.get_version(client, name, version)
    card = load_stored(client, name, version, mv)
    if card is None:
        return None, [f"no model card was built for v{version}: run model_card.py build"]
    current = collect_facts(client, name, version, mv)
    evaluation = current.get("evaluation")
    return card, check(card, current, evaluation["time"] if evaluation else None)
