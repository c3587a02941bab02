"""Model cards on a real MLflow server: build and read back, one test per check rule, the promotion
gate, deterministic rendering, exports that parse and validate, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import REPO, aliases, audit_events, call

from model_lifecycle.core import cards
from model_lifecycle.edges.commands import evaluate
from model_lifecycle.edges.commands import model_card
from model_lifecycle.edges.commands import transition

DEMO_CARD = REPO / "model_lifecycle" / "edges" / "demo_files" / "demo-model-card.yml"


@pytest.fixture()
def evaluated(tracking_uri, trained, make_versions, model_name, tmp_path):
    """A registered version with an evaluation by size_band, and a complete card file to start from."""
    (version,) = make_versions(1)
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump({
        "version": 1, "task": "binary", "holdout": {"path": trained["logistic"].holdout_path, "target": "target"},
        "slices": {"columns": ["size_band"], "min_size": 30}, "gates": [{"metric": "roc_auc", "floor": 0.5}],
    }))
    code, result = call(evaluate, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{version}",
                                   "--policy", str(policy), "--output", str(tmp_path / "eval.json")])
    assert code == 0, result
    card = yaml.safe_load(DEMO_CARD.read_text())
    return version, card, policy


def write_card(tmp_path: Path, card: dict) -> Path:
    path = tmp_path / "model-card.yml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def build(tracking_uri, name, version, card_path):
    return call(model_card, ["build", "--tracking-uri", tracking_uri, "--model", name, "--version", version,
                             "--card", str(card_path)])


def check(tracking_uri, name, version):
    return call(model_card, ["check", "--tracking-uri", tracking_uri, "--model", name, "--version", version])


def test_build_stores_the_card_with_the_version_and_it_reads_back(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    code, result = build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert code == 0 and result["complete"], result
    tags = client.get_model_version(model_name, version).tags
    assert tags["lifecycle.card.sha256"] == result["sha256"]
    assert tags["lifecycle.card.schema_version"] == "1" and tags["lifecycle.card.status"] == "approved"
    # read back as a user would: from the artifact URI in the tag
    local = mlflow.artifacts.download_artifacts(artifact_uri=tags["lifecycle.card.uri"] + "/card.json",
                                                dst_path=str(tmp_path / "dl"))
    stored = json.loads(Path(local).read_text())
    assert cards.sha256(stored) == tags["lifecycle.card.sha256"]
    assert stored["facts"]["registry"]["version"] == version
    assert stored["facts"]["registry"]["source"] == client.get_model_version(model_name, version).source
    assert stored["facts"]["datasets"]["holdout"]["sha256"] == tags["lifecycle.dataset.holdout.sha256"]
    assert set(stored["facts"]["evaluation"]["slices"]) == {"overall", "size_band.large", "size_band.medium", "size_band.small"}
    assert stored["team"]["intended_use"]["out_of_scope_uses"] == ["Any clinical or diagnostic use"]
    markdown = Path(mlflow.artifacts.download_artifacts(artifact_uri=tags["lifecycle.card.uri"] + "/card.md",
                                                        dst_path=str(tmp_path / "dl2"))).read_text()
    assert markdown.startswith(f"# Model card: {model_name} v{version}")
    description = client.get_model_version(model_name, version).description
    assert description.startswith("Classifies breast-cancer") and tags["lifecycle.card.uri"] in description
    assert check(tracking_uri, model_name, version)[0] == 0


@pytest.mark.parametrize("mutate, problem", [
    (lambda c: c["model_details"].update(summary="TODO"), "model_details.summary: missing"),
    (lambda c: c["model_details"].update(license="[More Information Needed]"), "model_details.license: missing"),
    (lambda c: c["considerations"].update(limitations="N/A"), "considerations.limitations: missing"),
    (lambda c: c["intended_use"].update(out_of_scope_uses=[]), "intended_use.out_of_scope_uses: missing"),
    (lambda c: c["card"]["risk"].update(ai_act_tier="high"), "human_oversight.override_and_stop: missing"),
    (lambda c: c["factors"].append({"name": "region", "kind": "group", "evaluated": True}),
     "factors[1]: 'region' is marked evaluated but the evaluation has no slice for it"),
    (lambda c: c["factors"].append({"name": "age", "kind": "group", "evaluated": False}), "factors[1].reason: missing"),
])
def test_check_fails_on_each_gap_in_the_teams_fields(tracking_uri, model_name, tmp_path, evaluated, mutate, problem):
    version, card, _ = evaluated
    mutate(card)
    assert build(tracking_uri, model_name, version, write_card(tmp_path, card))[0] == 0
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and problem in result["problems"], result["problems"]


def test_build_and_check_agree_on_a_factor_marked_evaluated_without_slices(client, tracking_uri, model_name, tmp_path,
                                                                          evaluated):
    """One completeness decision: what build records with the version is what the gate then finds."""
    version, card, _ = evaluated
    card["factors"].append({"name": "region", "kind": "group", "evaluated": True})
    assert build(tracking_uri, model_name, version, write_card(tmp_path, card))[0] == 0
    assert client.get_model_version(model_name, version).tags["lifecycle.card.complete"] == "false"
    stored = cards.load_stored(client, model_name, version)
    assert cards.missing_fields(stored["team"], stored["facts"]) == ["factors[1]"]
    code, checked = check(tracking_uri, model_name, version)
    assert code == 1 and checked["problems"] == [
        "factors[1]: 'region' is marked evaluated but the evaluation has no slice for it"]


def test_build_reports_a_factor_marked_evaluated_without_slices_as_missing(tracking_uri, model_name, tmp_path,
                                                                           evaluated):
    version, card, _ = evaluated
    card["factors"].append({"name": "region", "kind": "group", "evaluated": True})
    code, built = build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert code == 0 and not built["complete"] and built["missing"] == ["factors[1]"], built


def test_na_with_a_reason_is_an_answer(tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    card["considerations"]["limitations"] = "N/A: a rules table, it has no learned limitations"
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert check(tracking_uri, model_name, version)[0] == 0


def test_check_fails_when_the_approver_is_an_author(tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    card["card"]["risk"]["ai_act_tier"] = "high"
    card["card"]["approvals"] = [{"name": "Demo Author", "role": "lead", "decision": "approved", "date": "2026-11-27"}]
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and "card.approvals[0].name: the approver is also an author" in result["problems"]


def test_high_risk_needs_an_approval_that_approves(tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    card["card"]["risk"]["ai_act_tier"] = "high"
    card["card"]["approvals"] = [{"name": "Bob Reviewer", "role": "lead", "decision": "rejected", "date": "2026-11-27"}]
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    code, result = check(tracking_uri, model_name, version)
    assert code == 1
    assert "card.approvals[0].decision: rejected, not approved" in result["problems"]
    assert "card.approvals: no approval by someone who is not an author" in result["problems"]


def test_check_fails_when_the_card_is_older_than_the_latest_evaluation(tracking_uri, model_name, tmp_path, evaluated):
    version, card, policy = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert check(tracking_uri, model_name, version)[0] == 0
    call(evaluate, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{version}",
                    "--policy", str(policy), "--output", str(tmp_path / "eval2.json")])
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and "built_at: the card is older than the latest evaluation; rebuild it" in result["problems"]


def test_check_fails_when_registry_facts_no_longer_match(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    client.set_model_version_tag(model_name, version, "lifecycle.dataset.holdout.sha256", "sha256:" + "0" * 64)
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and "facts.datasets: dataset digests differ from the version's lineage tags" in result["problems"]


def test_check_fails_without_evaluation_or_without_card(tracking_uri, make_versions, model_name, tmp_path):
    (version,) = make_versions(1)
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and "no model card was built" in result["problems"][0]
    build(tracking_uri, model_name, version, write_card(tmp_path, yaml.safe_load(DEMO_CARD.read_text())))
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and any(p.startswith("facts.evaluation: the version has no evaluation") for p in result["problems"])


def test_a_tampered_stored_card_is_refused(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    client.set_model_version_tag(model_name, version, "lifecycle.card.sha256", "sha256:" + "1" * 64)
    code, result = check(tracking_uri, model_name, version)
    assert code == 1 and "was altered" in result["error"]


def test_promotion_refuses_an_incomplete_card_then_accepts_the_completed_one(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    base = ["--tracking-uri", tracking_uri, "--model", model_name, "--version", version]
    call(transition, [*base, "--to", "staging"])
    card["caveats_and_recommendations"] = "TBD"
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    code, result = call(transition, [*base, "--to", "production", "--expect-champion", "none"])
    assert code == 1 and "caveats_and_recommendations: missing" in result["error"]
    assert aliases(client, model_name) == {"challenger": version}
    card["caveats_and_recommendations"] = "Use only to learn the toolkit."
    code, built = build(tracking_uri, model_name, version, write_card(tmp_path, card))
    code, result = call(transition, [*base, "--to", "production", "--expect-champion", "none"])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": version}
    promote = audit_events(client, model_name)[-1]
    assert promote["evidence"]["card"] == built["sha256"] and promote["details"]["card_check"] == "passed"


def test_rendering_is_deterministic_and_shows_missing_required_fields(tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    card["metrics"]["uncertainty_method"] = "TODO"
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    out = tmp_path / "card.md"
    call(model_card, ["export", "--tracking-uri", tracking_uri, "--model", model_name, "--version", version,
                      "--format", "json", "--output", str(out)])
    stored = json.loads(out.read_text())
    first = cards.render_markdown(stored)

    def shuffled(node):
        if isinstance(node, dict):
            items = list(node.items())
            random.Random(len(items)).shuffle(items)
            return {k: shuffled(v) for k, v in items}
        return [shuffled(v) for v in node] if isinstance(node, list) else node

    assert cards.render_markdown(shuffled(stored)) == first
    assert cards.render_markdown(json.loads(json.dumps(stored))).encode() == first.encode()
    assert "- **Uncertainty:** **Not provided (required)**" in first
    assert first.rstrip().splitlines()[-1].startswith("| Art. 72 | post-market monitoring |")
    sections = [line for line in first.splitlines() if line.startswith("## ")]
    assert sections[:5] == ["## Model Details", "## Uses", "## Bias, Risks, and Limitations", "## Training Details",
                            "## Evaluation"]


def test_exports_parse_and_cyclonedx_validates_against_the_1_6_schema(tracking_uri, model_name, tmp_path, evaluated):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    version, card, _ = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    base = ["export", "--tracking-uri", tracking_uri, "--model", model_name, "--version", version]
    call(model_card, [*base, "--format", "huggingface", "--output", str(tmp_path / "README.md")])
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"].startswith("N/A") and front["library_name"] == "mlflow"
    metrics = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert 0.9 < metrics["roc_auc"] <= 1
    assert f"# Model card: {model_name} v{version}" in text

    call(model_card, [*base, "--format", "cyclonedx", "--output", str(tmp_path / "bom.json")])
    bom_text = (tmp_path / "bom.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom_text) is None
    component = json.loads(bom_text)["components"][0]
    assert component["type"] == "machine-learning-model" and component["version"] == version
    slices = {m.get("slice") for m in component["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]}
    assert {"size_band.large", None} <= slices


def test_diff_against_the_champion(client, tracking_uri, trained, make_versions, model_name, tmp_path, evaluated):
    version, card, policy = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    client.set_registered_model_alias(model_name, "champion", version)
    (second,) = make_versions(1)
    call(evaluate, ["--tracking-uri", tracking_uri, "--model-uri", f"models:/{model_name}/{second}",
                    "--policy", str(policy), "--output", str(tmp_path / "e2.json")])
    card["intended_use"]["primary_users"] = ["Engineers", "Auditors"]
    build(tracking_uri, model_name, second, write_card(tmp_path, card))
    code, result = call(model_card, ["diff", "--tracking-uri", tracking_uri, "--model", model_name, "--version", second])
    assert code == 0 and result["champion"] == version
    text = result["markdown"]
    assert f"vs champion v{version}" in text and "| size_band.large | roc_auc |" in text
    assert "`intended_use.primary_users`" in text and "Auditors" in text


def test_card_bad_input_exits_2_and_writes_nothing(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    path = tmp_path / "model-card.yml"
    path.write_text("card:\n  status: draft\n  authors: [oops\n")
    code, result = build(tracking_uri, model_name, version, path)
    assert code == 2 and f"{path}:4:1: not valid YAML" in result["error"]
    card["model_details"]["lisence"] = "MIT"
    code, result = build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert code == 2 and "model_details.lisence: unknown field; did you mean 'license'?" in result["error"]
    del card["model_details"]["lisence"]
    code, result = build(tracking_uri, model_name, "99", write_card(tmp_path, card))
    assert code == 2 and "has no version 99" in result["error"]
    assert not [k for k in client.get_model_version(model_name, version).tags if k.startswith("lifecycle.card")]


def test_init_writes_a_skeleton_that_builds_but_does_not_pass(tracking_uri, model_name, tmp_path, evaluated):
    version, _, _ = evaluated
    out = tmp_path / "skeleton.yml"
    assert call(model_card, ["init", "--model", model_name, "--output", str(out)])[0] == 0
    assert "# Model card for" in out.read_text()
    code, result = call(model_card, ["init", "--model", model_name, "--output", str(out)])
    assert code == 2 and "already exists" in result["error"]
    code, result = build(tracking_uri, model_name, version, out)
    assert code == 0 and not result["complete"]
    code, result = check(tracking_uri, model_name, version)
    assert code == 1
    for path in ("card.risk.ai_act_tier", "model_details.summary", "factors[0].name", "card.authors[0].name"):
        assert f"{path}: missing" in result["problems"]
