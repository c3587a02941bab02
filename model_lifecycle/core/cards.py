"""Model cards that gate promotion: the team's fields, facts read from MLflow, checks, rendering, exports.

The card is a validated document, not free text. The team writes ``model-card.yml`` (what only
people know: intended use, limitations, oversight); ``build`` merges it with facts read from MLflow
(registry facts, signature, params, dataset digests, the latest evaluation by slice, the gate
verdict) into one structured card (JSON), renders it to Markdown, and stores both with the version.
``check`` is the completeness gate that production promotion runs.

Sections, required fields and gate rules follow ``shared/reference/model-cards.md`` (Mitchell et al.
2019, Hugging Face and Google Model Card Toolkit formats, CycloneDX 1.6 modelCard, EU AI Act).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
NOT_PROVIDED = "Not provided (required)"


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(_Open):
    name: str | None = None
    role: str | None = None
    contact: str | None = None


class Approval(_Open):
    name: str | None = None
    role: str | None = None
    decision: Literal["approved", "rejected"] | None = None
    date: str | None = None


class Risk(_Open):
    ai_act_tier: Literal["high", "limited", "minimal", "out_of_scope"] | None = None
    rationale: str | None = None


class CardMeta(_Open):
    status: Literal["draft", "in_review", "approved"] | None = None
    authors: list[Person] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    risk: Risk = Field(default_factory=Risk)


class ModelDetails(_Open):
    summary: str | None = None
    owners: list[Person] = Field(default_factory=list)
    changes_from_previous: str | None = None
    model_type: str | None = None
    architecture: str | None = None
    training_algorithm: str | None = None
    license: str | None = None


class IntendedUse(_Open):
    primary_uses: list[str] = Field(default_factory=list)
    primary_users: list[str] = Field(default_factory=list)
    out_of_scope_uses: list[str] = Field(default_factory=list)
    foreseeable_misuse: list[str] = Field(default_factory=list)
    deployment: str | None = None


class IOSpecification(_Open):
    input_preconditions: str | None = None
    output_interpretation: str | None = None


class Factor(_Open):
    name: str | None = None
    kind: Literal["group", "instrumentation", "environment"] | None = None
    sensitive: bool = False
    evaluated: bool = True
    reason: str | None = None


class Measure(_Open):
    name: str | None = None
    why: str | None = None


class Metrics(_Open):
    measures: list[Measure] = Field(default_factory=list)
    decision_threshold: str | None = None
    uncertainty_method: str | None = None
    fairness_measures: str | None = None
    acceptance_criteria: str | None = None


class DatasetNotes(_Open):
    motivation: str | None = None
    preprocessing: str | None = None
    provenance: str | None = None
    labelling: str | None = None
    cleaning: str | None = None
    bias_examination: str | None = None


class Datasets(_Open):
    training: DatasetNotes = Field(default_factory=DatasetNotes)
    evaluation: DatasetNotes = Field(default_factory=DatasetNotes)


class Ethical(_Open):
    sensitive_data: str | None = None
    risks_and_harms: str | None = None
    mitigations: str | None = None


class Considerations(_Open):
    limitations: str | None = None
    tradeoffs: str | None = None
    ethical: Ethical = Field(default_factory=Ethical)
    fairness_assessments: str | None = None


class HumanOversight(_Open):
    built_in_measures: str | None = None
    deployer_measures: str | None = None
    override_and_stop: str | None = None
    automation_bias_guidance: str | None = None


class Operations(_Open):
    maintenance: str | None = None
    logging_retention: str | None = None
    post_market_monitoring: str | None = None


class TeamCard(_Open):
    """What the team writes in model-card.yml."""

    schema_version: Literal[1] = 1
    card: CardMeta = Field(default_factory=CardMeta)
    model_details: ModelDetails = Field(default_factory=ModelDetails)
    intended_use: IntendedUse = Field(default_factory=IntendedUse)
    io_specification: IOSpecification = Field(default_factory=IOSpecification)
    factors: list[Factor] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    datasets: Datasets = Field(default_factory=Datasets)
    robustness_security: str | None = None
    explainability: str | None = None
    considerations: Considerations = Field(default_factory=Considerations)
    caveats_and_recommendations: str | None = None
    human_oversight: HumanOversight = Field(default_factory=HumanOversight)
    operations: Operations = Field(default_factory=Operations)


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

_PLACEHOLDER = re.compile(r"^\s*(todo|tbd|tbc|\[more information needed\]|xxx|\?+|-+|none|null)\s*[.:!]?\s*$", re.IGNORECASE)
_NA = re.compile(r"^\s*n/?a\s*$", re.IGNORECASE)


def is_missing(value: Any) -> bool:
    """Placeholders count as missing: empty, TODO, TBD, [More Information Needed], bare "N/A".
    "N/A: <reason>" is an answer."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip() or bool(_PLACEHOLDER.match(value)) or bool(_NA.match(value))
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


def missing_fields(team: dict[str, Any]) -> list[str]:
    tier = get_path(team, "card.risk.ai_act_tier")
    missing = [p for p in required_paths(tier) if is_missing(get_path(team, p))]
    for i, person in enumerate(team.get("card", {}).get("authors") or []):
        if is_missing(person.get("name")):
            missing.append(f"card.authors[{i}].name")
    for i, factor in enumerate(team.get("factors") or []):
        if is_missing(factor.get("name")):
            missing.append(f"factors[{i}].name")
        if not factor.get("evaluated", True) and is_missing(factor.get("reason")):
            missing.append(f"factors[{i}].reason")
    return missing


# --- facts from MLflow -----------------------------------------------------------------------------


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
            key.split(".")[2]: {"sha256": value, "rows": tags.get(key.replace(".sha256", ".rows"))}
            for key, value in sorted(tags.items())
            if key.startswith("lifecycle.dataset.") and key.endswith(".sha256")
        },
        "git_commit": tags.get("lifecycle.git_commit"),
    }
    with registry.mlflow_errors():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}/MLmodel")
        info = Model.load(local)
        facts["signature"] = info.signature.to_dict() if info.signature else None
        facts["flavors"] = sorted(info.flavors)
        if mv.run_id:
            run = client.get_run(mv.run_id)
            facts["params"] = dict(sorted(run.data.params.items()))
        evaluation_run = tags.get("lifecycle.last_evaluation_run_id")
        facts["evaluation"] = _evaluation_facts(client, evaluation_run, tags) if evaluation_run else None
    facts["verdict"] = (
        {"sha256": tags["lifecycle.verdict.sha256"], "passed": tags.get("lifecycle.verdict.passed") == "true",
         "run_id": tags.get("lifecycle.verdict.run_id")}
        if "lifecycle.verdict.sha256" in tags else None
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
        "time": int(tags.get("lifecycle.last_evaluation_time", run.info.start_time)),
        "holdout_sha256": run.data.tags.get("lifecycle.holdout.sha256"),
        "slices": {k: slices[k] for k in sorted(slices, key=lambda k: (k != "overall", k))},
    }


def build_card(team: TeamCard, facts: dict[str, Any], built_at_ms: int) -> dict[str, Any]:
    """The structured card: the team's fields plus facts. Keys sorted, so the JSON is canonical."""
    return {
        "schema_version": SCHEMA_VERSION,
        "built_at": built_at_ms,
        "team": team.model_dump(mode="json"),
        "facts": facts,
    }


def canonical(card: dict[str, Any]) -> str:
    return json.dumps(card, sort_keys=True, indent=2, default=str) + "\n"


def sha256(card: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(card).encode()).hexdigest()


def status(card: dict[str, Any]) -> str:
    return card["team"]["card"].get("status") or "draft"


# --- rendering -------------------------------------------------------------------------------------


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["cell"] = lambda v: "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")
    env.filters["num"] = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else "–"
    return env


def render_markdown(card: dict[str, Any]) -> str:
    """Deterministic Markdown in the Hugging Face section order; missing required fields are visible."""
    team, facts = card["team"], card["facts"]
    required = set(required_paths(get_path(team, "card.risk.ai_act_tier")))

    def field(path: str) -> str:
        value = get_path(team, path)
        if is_missing(value):
            return f"**{NOT_PROVIDED}**" if path in required else "_Not provided_"
        if isinstance(value, list):
            return "\n".join(f"- {_item(v)}" for v in value)
        return str(value).strip()

    return _env().get_template("model_card.md.j2").render(
        card=card, team=team, facts=facts, field=field, ai_act=AI_ACT_MAP, NOT_PROVIDED=NOT_PROVIDED,
        slices=_ordered_slices(facts),
    )


_ITEM_ORDER = ("name", "role", "contact", "decision", "date")


def _item(value: Any) -> str:
    """A list entry on one line, keys in a fixed order so rendering never depends on input order."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (_ITEM_ORDER.index(k) if k in _ITEM_ORDER else len(_ITEM_ORDER), k))
        return ", ".join(f"{k}: {value[k]}" for k in keys if value[k] not in (None, "", []))
    return str(value)


def _ordered_slices(facts: dict[str, Any]) -> list[tuple[str, Any]]:
    slices = (facts.get("evaluation") or {}).get("slices") or {}
    return sorted(slices.items(), key=lambda kv: (kv[0] != "overall", kv[0]))


# --- the completeness gate -------------------------------------------------------------------------


def check(card: dict[str, Any], current_facts: dict[str, Any], evaluation_time_ms: int | None) -> list[str]:
    """Everything that keeps the card from gating promotion, by field path. Empty: complete."""
    team, facts = card["team"], card["facts"]
    problems = [f"{path}: missing" for path in missing_fields(team)]
    evaluation = facts.get("evaluation")
    if evaluation is None:
        problems.append("facts.evaluation: the version has no evaluation; run evaluate.py or compare_baseline.py")
    else:
        for key, entry in evaluation["slices"].items():
            if not entry["metrics"] and entry.get("n") is None:
                problems.append(f"quantitative_analysis.{key}: no result")
        evaluated_columns = {k.split(".", 1)[0] for k in evaluation["slices"] if k != "overall" and "__" not in k}
        for i, factor in enumerate(team.get("factors") or []):
            if factor.get("evaluated", True) and factor.get("name") and factor["name"] not in evaluated_columns:
                problems.append(
                    f"factors[{i}]: {factor['name']!r} is marked evaluated but the evaluation has no slice for it"
                )
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
    if get_path(team, "card.risk.ai_act_tier") == "high":
        authors = {(a.get("name") or "").strip().lower() for a in team["card"].get("authors") or []}
        approvals = team["card"].get("approvals") or []
        for i, approval in enumerate(approvals):
            if (approval.get("name") or "").strip().lower() in authors:
                problems.append(f"card.approvals[{i}].name: the approver is also an author")
            if approval.get("decision") != "approved":
                problems.append(f"card.approvals[{i}].decision: {approval.get('decision') or 'missing'}, not approved")
        if approvals and not any(a.get("decision") == "approved" and (a.get("name") or "").strip().lower() not in authors
                                 for a in approvals):
            problems.append("card.approvals: no approval by someone who is not an author")
    return problems


# --- diff and exports ------------------------------------------------------------------------------


def diff_markdown(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
    return _env().get_template("card_diff.md.j2").render(
        cand=candidate, champ=champion, rows=_metric_rows(candidate, champion),
        changes=_text_changes(candidate, champion) if champion else [],
        data=_data_changes(candidate, champion) if champion else [],
    )


def _metric_rows(candidate: dict[str, Any], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    cand = (candidate["facts"].get("evaluation") or {}).get("slices", {})
    champ = ((champion or {}).get("facts", {}).get("evaluation") or {}).get("slices", {})
    rows = []
    for key in sorted(set(cand) | set(champ), key=lambda k: (k != "overall", k)):
        for metric in sorted(set(cand.get(key, {}).get("metrics", {})) | set(champ.get(key, {}).get("metrics", {}))):
            c = cand.get(key, {}).get("metrics", {}).get(metric, {}).get("value")
            b = champ.get(key, {}).get("metrics", {}).get(metric, {}).get("value")
            rows.append({"slice": key, "metric": metric, "cand": c, "champ": b,
                         "delta": None if c is None or b is None else c - b})
    return rows


def _text_changes(candidate: dict[str, Any], champion: dict[str, Any]) -> list[dict[str, Any]]:
    changes = []
    for section in ("intended_use", "considerations", "card"):
        for path, new in _flatten(candidate["team"].get(section), section).items():
            old = _flatten(champion["team"].get(section), section).get(path)
            if new != old:
                changes.append({"path": path, "old": old, "new": new})
    return changes


def _data_changes(candidate: dict[str, Any], champion: dict[str, Any]) -> list[dict[str, Any]]:
    new, old = candidate["facts"].get("datasets") or {}, champion["facts"].get("datasets") or {}
    return [{"name": k, "old": (old.get(k) or {}).get("sha256"), "new": (new.get(k) or {}).get("sha256")}
            for k in sorted(set(new) | set(old)) if new.get(k) != old.get(k)]


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
        return out
    return {prefix: json.dumps(node, sort_keys=True) if isinstance(node, (list, dict)) else node}


def export_huggingface(card: dict[str, Any]) -> str:
    """A Hugging Face README: YAML front matter (license, tags, model-index) + the rendered card."""
    import yaml

    team, facts = card["team"], card["facts"]
    overall = ((facts.get("evaluation") or {}).get("slices") or {}).get("overall", {}).get("metrics", {})
    front = {
        "license": team["model_details"].get("license") or "other",
        "library_name": "mlflow",
        "tags": sorted({"mlflow", *facts.get("flavors", [])}),
        "model-index": [{
            "name": f"{facts['registry']['registered_model']} v{facts['registry']['version']}",
            "results": [{
                "task": {"type": team["model_details"].get("model_type") or "tabular"},
                "dataset": {"name": "hold-out", "type": "tabular",
                            "revision": (facts.get("evaluation") or {}).get("holdout_sha256") or ""},
                "metrics": [{"type": m, "value": round(v["value"], 6)} for m, v in sorted(overall.items())
                            if v.get("value") is not None],
            }],
        }],
    }
    return "---\n" + yaml.safe_dump(front, sort_keys=True) + "---\n\n" + render_markdown(card)


def export_cyclonedx(card: dict[str, Any]) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM with one machine-learning-model component and its modelCard."""
    import uuid

    team, facts = card["team"], card["facts"]
    registry = facts["registry"]
    slices = (facts.get("evaluation") or {}).get("slices") or {}
    performance = []
    for key, entry in slices.items():
        for metric, stats in sorted(entry["metrics"].items()):
            if stats.get("value") is None:
                continue
            item: dict[str, Any] = {"type": metric, "value": f"{stats['value']:.6f}"}
            if key != "overall":
                item["slice"] = key
            if stats.get("ci_low") is not None:
                item["confidenceInterval"] = {"lowerBound": f"{stats['ci_low']:.6f}", "upperBound": f"{stats['ci_high']:.6f}"}
            performance.append(item)
    considerations = team["considerations"]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, sha256(card))}",
        "version": 1,
        "components": [{
            "type": "machine-learning-model",
            "bom-ref": f"{registry['registered_model']}@{registry['version']}",
            "name": registry["registered_model"],
            "version": registry["version"],
            "description": team["model_details"].get("summary") or "",
            "modelCard": {
                "modelParameters": {
                    "approach": {"type": "supervised"},
                    "task": team["model_details"].get("model_type") or "",
                    "architectureFamily": team["model_details"].get("architecture") or "",
                    "modelArchitecture": team["model_details"].get("training_algorithm") or "",
                    "datasets": [{"type": "dataset", "name": name,
                                  "contents": {"attachment": {"content": d["sha256"]}}} for name, d in sorted(facts.get("datasets", {}).items())],
                },
                "quantitativeAnalysis": {"performanceMetrics": performance},
                "considerations": {
                    "users": team["intended_use"].get("primary_users") or [],
                    "useCases": team["intended_use"].get("primary_uses") or [],
                    "technicalLimitations": [considerations.get("limitations")] if considerations.get("limitations") else [],
                    "ethicalConsiderations": [{"name": considerations["ethical"].get("risks_and_harms") or "",
                                               "mitigationStrategy": considerations["ethical"].get("mitigations") or ""}],
                },
            },
        }],
    }


# --- storage with the version ----------------------------------------------------------------------

TAG_SHA = "lifecycle.card.sha256"
TAG_URI = "lifecycle.card.uri"


def store(client: Any, card: dict[str, Any], markdown: str) -> dict[str, str]:
    """Store card.json and card.md as artifacts of the version's model, then tag the version.

    MLflow 3 logged models (``models:/m-...``) get them under ``model_card/<name>/v<version>/``
    in the model's own artifacts; versions registered from a run get them in the run's artifacts.
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
    complete = not missing_fields(card["team"])
    tags = {TAG_SHA: digest, TAG_URI: uri, "lifecycle.card.schema_version": str(card["schema_version"]),
            "lifecycle.card.status": status(card), "lifecycle.card.complete": str(complete).lower(),
            "lifecycle.card.built_at": str(card["built_at"])}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    summary = (card["team"]["model_details"].get("summary") or "").strip().splitlines()
    client.update_model_version(
        name, version,
        description=(f"{summary[0] if summary else 'No summary yet.'}\n\n"
                     f"Model card ({status(card)}, {'complete' if complete else 'incomplete'}): {uri}/card.md "
                     f"({digest[:19]}…)"),
    )
    return {"uri": uri, "sha256": digest}


def load_stored(client: Any, name: str, version: str, mv: Any = None) -> dict[str, Any] | None:
    """The card stored with a version, or None if none was built. Its digest is verified."""
    import tempfile

    import mlflow

    from model_lifecycle.adapters import registry
    from model_lifecycle.errors import Refused

    tags = (mv or registry.get_version(client, name, version)).tags or {}
    if TAG_URI not in tags:
        return None
    with tempfile.TemporaryDirectory() as tmp, registry.mlflow_errors():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{tags[TAG_URI]}/card.json", dst_path=tmp)
        card = json.loads(Path(local).read_text(encoding="utf-8"))
    if sha256(card) != tags.get(TAG_SHA):
        raise Refused(f"the stored card of {name!r} v{version} does not match its sha256 tag: it was altered")
    return card


def check_version(client: Any, name: str, version: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The completeness gate for one version: (card, problems); no problems means it may be promoted."""
    from model_lifecycle.adapters import registry

    mv = registry.get_version(client, name, version)
    card = load_stored(client, name, version, mv)
    if card is None:
        return None, [f"no model card was built for v{version}: run model_card.py build"]
    current = collect_facts(client, name, version, mv)
    evaluation = current.get("evaluation")
    return card, check(card, current, evaluation["time"] if evaluation else None)
