"""What a model card holds: the validated models of the team's ``model-card.yml`` and the shape of the
structured card (team fields plus MLflow facts) that is stored, rendered and checked."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
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
    license_link: str | None = None  # where an own licence's text is (the Hub export's license_link)


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


def build_card(team: TeamCard, facts: dict[str, Any], built_at_ms: int) -> dict[str, Any]:
    """The structured card: the team's fields plus facts. Keys sorted, so the JSON is canonical."""
    return {
        "schema_version": SCHEMA_VERSION,
        "built_at": built_at_ms,
        "team": team.model_dump(mode="json"),
        "facts": facts,
    }
