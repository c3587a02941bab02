"""Model cards that gate promotion: the team's fields, facts read from MLflow, checks, rendering, exports.

The card is a validated document, not free text. The team writes ``model-card.yml`` (what only
people know: intended use, limitations, oversight); ``build`` merges it with facts read from MLflow
(registry facts, signature, params, dataset digests, the latest evaluation by slice, the gate
verdict) into one structured card (JSON), renders it to Markdown, and stores both with the version.
``check`` is the completeness gate that production promotion runs; ``build`` reports completeness by
the same decision (``rules.gaps``).

Sections, required fields and gate rules follow ``shared/reference/model-cards.md`` (Mitchell et al.
2019, Hugging Face and Google Model Card Toolkit formats, CycloneDX 1.6 modelCard, EU AI Act).

Modules by concern: ``schema`` (what the card holds), ``rules`` (when it is complete), ``facts``
(what MLflow knows), ``render`` (JSON, Markdown, diff, exports), ``storage`` (with the version).
Every name is re-exported here, so ``from model_lifecycle.core import cards`` is all an importer needs.
"""

from __future__ import annotations

from model_lifecycle.core.cards.facts import collect_facts
from model_lifecycle.core.cards.render import (
    TEMPLATES,
    canonical,
    diff_markdown,
    export_cyclonedx,
    export_huggingface,
    render_markdown,
    sha256,
    status,
)
from model_lifecycle.core.cards.rules import (
    AI_ACT_MAP,
    REQUIRED,
    REQUIRED_HIGH,
    Gap,
    author_of,
    check,
    gaps,
    get_path,
    is_missing,
    missing_fields,
    required_paths,
)
from model_lifecycle.core.cards.schema import (
    NOT_PROVIDED,
    SCHEMA_VERSION,
    Approval,
    CardMeta,
    Considerations,
    DatasetNotes,
    Datasets,
    Ethical,
    Factor,
    HumanOversight,
    IntendedUse,
    IOSpecification,
    Measure,
    Metrics,
    ModelDetails,
    Operations,
    Person,
    Risk,
    TeamCard,
    build_card,
)
from model_lifecycle.core.cards.storage import TAG_SHA, TAG_URI, check_version, load_stored, store

__all__ = [
    "AI_ACT_MAP", "NOT_PROVIDED", "REQUIRED", "REQUIRED_HIGH", "SCHEMA_VERSION", "TAG_SHA", "TAG_URI", "TEMPLATES",
    "Approval", "CardMeta", "Considerations", "DatasetNotes", "Datasets", "Ethical", "Factor", "Gap",
    "HumanOversight", "IOSpecification", "IntendedUse", "Measure", "Metrics", "ModelDetails", "Operations",
    "Person", "Risk", "TeamCard",
    "author_of", "build_card", "canonical", "check", "check_version", "collect_facts", "diff_markdown",
    "export_cyclonedx", "export_huggingface", "gaps", "get_path", "is_missing", "load_stored", "missing_fields",
    "render_markdown", "required_paths", "sha256", "status", "store",
]
