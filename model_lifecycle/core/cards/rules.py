"""When a card is complete: the required fields by risk tier and the one decision (``gaps``) that both
``build`` (complete / missing) and the promotion gate (``check``) apply, so the two cannot disagree."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

# Required team fields (R) and those added for risk tier "high" (HR), by path.
REQUIRED = [
    "card.status", "card.authors", "card.risk.ai_act_tier", "card.risk.rationale",
    "model_details.summary", "model_details.owners", "model_details.changes_from_previous",
    "model_details.model_type", "model_details.training_algorithm", "model_details.license",
    "intended_use.primary_uses", "intended_use.primary_users", "intended_use.out_of_scope_uses",
    "factors", "metrics.measures", "metrics.uncertainty_method",
    "datasets.training.motivation", "datasets.evaluation.motivation",
    "considerations.limitations", "considerations.ethical.sensitive_data",
    "considerations.ethical.risks_and_harms", "considerations.ethical.mitigations",
    "caveats_and_recommendations",
]
REQUIRED_HIGH = [
    "card.approvals", "intended_use.foreseeable_misuse", "intended_use.deployment",
    "io_specification.input_preconditions", "io_specification.output_interpretation",
    "metrics.fairness_measures", "metrics.acceptance_criteria",
    "datasets.training.provenance", "datasets.training.labelling", "datasets.training.cleaning",
    "datasets.training.bias_examination", "robustness_security", "considerations.tradeoffs",
    "considerations.fairness_assessments", "human_oversight.built_in_measures",
    "human_oversight.deployer_measures", "human_oversight.override_and_stop",
    "human_oversight.automation_bias_guidance", "operations.maintenance",
    "operations.logging_retention", "operations.post_market_monitoring",
]

# EU AI Act items the card answers: (article, what, card section, audit record).
AI_ACT_MAP = [
    ("Art. 9", "risk management", "card.risk, considerations", "gate verdicts (evidence digests)"),
    ("Art. 10", "data and data governance", "datasets, facts.datasets", "dataset sha256 in version tags"),
    ("Art. 11 + Annex IV", "technical documentation", "the whole card", "card sha256 in the promotion event"),
    ("Art. 12", "record-keeping (logging)", "operations.logging_retention", "audit record: every state change"),
    ("Art. 13(3)", "transparency and information to deployers", "intended_use, io_specification, caveats", "-"),
    ("Art. 14", "human oversight", "human_oversight", "approver and approval in the promotion event"),
    ("Art. 15", "accuracy, robustness, cybersecurity", "quantitative_analysis, robustness_security", "verdict"),
    ("Art. 17", "quality management", "card.approvals, metrics.acceptance_criteria", "promotion events"),
    ("Art. 18, 19", "documentation and log keeping", "operations", "champions are never deleted; alias history"),
    ("Art. 72", "post-market monitoring", "operations.post_market_monitoring", "rollback events"),
]

# A placeholder alone ("TODO", "none", "???"), or a marker of unfinished work followed by anything
# ("TODO: later", "TBD - waiting for legal"): the text after it says when, not what.
_PLACEHOLDER = re.compile(r"^\s*(todo|tbd|tbc|\[more information needed\]|xxx|\?+|-+|none|null)\s*[.:!]?\s*$", re.IGNORECASE)
_UNFINISHED = re.compile(r"^\s*(todo|tbd|tbc|fixme|xxx|\[more information needed\])(?![a-z0-9])", re.IGNORECASE)
# "N/A" and what follows it: only a reason after it makes it an answer ("N/A: not distributed").
_NA = re.compile(r"^\s*n/?a(?![a-z0-9])[\s.:;,!\-–—]*(?P<reason>.*)$", re.IGNORECASE | re.DOTALL)


class Gap(NamedTuple):
    """One thing that keeps a card from being complete: the field path and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def is_missing(value: Any) -> bool:
    """Placeholders count as missing: empty, TODO, TBD, [More Information Needed], bare "N/A".

    So does a marker of unfinished work with text after it ("TODO: later", "TBD - waiting"), and
    "N/A" with punctuation but no reason ("N/A:", "N/A."). "N/A: <reason>" is an answer, unless the
    reason is itself a placeholder ("N/A: TBD")."""
    if value is None:
        return True
    if isinstance(value, str):
        if not value.strip() or _PLACEHOLDER.match(value) or _UNFINISHED.match(value):
            return True
        na = _NA.match(value)
        return bool(na) and is_missing(na.group("reason"))
    if isinstance(value, (list, tuple)):
        return not value or all(is_missing(v) for v in value)
    if isinstance(value, dict):
        return not value or all(is_missing(v) for v in value.values())
    return False


def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def required_paths(tier: str | None) -> list[str]:
    return REQUIRED + (REQUIRED_HIGH if tier == "high" else [])


def gaps(team: dict[str, Any], facts: dict[str, Any] | None = None) -> list[Gap]:
    """The completeness decision: every gap the card shows by itself, in the team's fields and, given the
    card's ``facts``, in its evaluation. ``check`` adds only what needs MLflow now (drift, staleness).

    Without ``facts`` only the team's fields are decided (the evaluation rules are skipped, not passed).
    """
    tier = get_path(team, "card.risk.ai_act_tier")
    found = [Gap(path, "missing") for path in required_paths(tier) if is_missing(get_path(team, path))]
    for i, person in enumerate(team.get("card", {}).get("authors") or []):
        if is_missing(person.get("name")):
            found.append(Gap(f"card.authors[{i}].name", "missing"))
    for i, factor in enumerate(team.get("factors") or []):
        if is_missing(factor.get("name")):
            found.append(Gap(f"factors[{i}].name", "missing"))
        if not factor.get("evaluated", True) and is_missing(factor.get("reason")):
            found.append(Gap(f"factors[{i}].reason", "missing"))
    if facts is not None:
        found.extend(_evaluation_gaps(team, facts.get("evaluation")))
    if tier == "high":
        found.extend(_approval_gaps(team))
    return found


def _evaluation_gaps(team: dict[str, Any], evaluation: dict[str, Any] | None) -> list[Gap]:
    """Every slice has a result, and every factor marked evaluated has a slice."""
    if evaluation is None:
        return [Gap("facts.evaluation", "the version has no evaluation; run evaluate.py or compare_baseline.py")]
    found = [Gap(f"quantitative_analysis.{key}", "no result")
             for key, entry in evaluation["slices"].items() if not entry["metrics"] and entry.get("n") is None]
    evaluated_columns = {k.split(".", 1)[0] for k in evaluation["slices"] if k != "overall" and "__" not in k}
    for i, factor in enumerate(team.get("factors") or []):
        if factor.get("evaluated", True) and factor.get("name") and factor["name"] not in evaluated_columns:
            found.append(Gap(f"factors[{i}]",
                             f"{factor['name']!r} is marked evaluated but the evaluation has no slice for it"))
    return found


def _approval_gaps(team: dict[str, Any]) -> list[Gap]:
    """High risk: every approval approves, and at least one comes from someone who is not an author."""
    authors = {(a.get("name") or "").strip().lower() for a in team["card"].get("authors") or []}
    approvals = team["card"].get("approvals") or []
    found = []
    for i, approval in enumerate(approvals):
        if (approval.get("name") or "").strip().lower() in authors:
            found.append(Gap(f"card.approvals[{i}].name", "the approver is also an author"))
        if approval.get("decision") != "approved":
            found.append(Gap(f"card.approvals[{i}].decision", f"{approval.get('decision') or 'missing'}, not approved"))
    if approvals and not any(a.get("decision") == "approved" and (a.get("name") or "").strip().lower() not in authors
                             for a in approvals):
        found.append(Gap("card.approvals", "no approval by someone who is not an author"))
    return found


def _identities(text: str | None) -> set[str]:
    """The forms one identity takes: a name, an e-mail address, or a GitHub login written as
    ``@login``, ``github:login`` or ``https://github.com/login``; compared without case or spacing."""
    value = " ".join((text or "").split()).lower()
    if not value:
        return set()
    forms = {value}
    login = re.sub(r"^(?:@|github:|(?:https?://)?(?:www\.)?github\.com/)", "", value).strip("/")
    if login and login != value:
        forms.add(login)
    return forms


def author_of(team: dict[str, Any], approver: str | None) -> str | None:
    """The card's author (``card.authors``) who is ``approver``, by name, contact or GitHub login, or None.

    High-risk cards need an approver who did not write the card (the four-eyes rule of Art. 14/17)."""
    wanted = _identities(approver)
    if not wanted:
        return None
    for author in (team.get("card") or {}).get("authors") or []:
        if wanted & (_identities(author.get("name")) | _identities(author.get("contact"))):
            return author.get("name") or author.get("contact")
    return None


def missing_fields(team: dict[str, Any], facts: dict[str, Any] | None = None) -> list[str]:
    """The paths ``gaps`` finds: what ``build`` reports as missing (pass the card's facts to decide it all)."""
    return [gap.path for gap in gaps(team, facts)]


def check(card: dict[str, Any], current_facts: dict[str, Any], evaluation_time_ms: int | None) -> list[str]:
    """Everything that keeps the card from gating promotion, by field path. Empty: complete.

    The card's own gaps, then whether it still describes the version: registry facts and dataset digests
    as MLflow has them now, and no evaluation newer than the card.
    """
    facts = card["facts"]
    problems = [str(gap) for gap in gaps(card["team"], facts)]
    for key in ("registered_model", "version", "source", "run_id"):
        if facts["registry"].get(key) != current_facts["registry"].get(key):
            problems.append(
                f"facts.registry.{key}: card says {facts['registry'].get(key)!r}, the version is "
                f"{current_facts['registry'].get(key)!r}"
            )
    if facts.get("datasets") != current_facts.get("datasets"):
        problems.append("facts.datasets: dataset digests differ from the version's lineage tags")
    if evaluation_time_ms is not None and card["built_at"] < evaluation_time_ms:
        problems.append("built_at: the card is older than the latest evaluation; rebuild it")
    return problems
