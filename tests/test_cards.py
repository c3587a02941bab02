"""Model cards on a real MLflow server: build and read back, one test per check rule, the promotion
gate, deterministic rendering, exports that parse and validate, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import REPO, aliases, audit_events, call, record_passing_verdict

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
    record_passing_verdict(client, model_name, version)
    assert call(transition, [*base, "--to", "staging"])[0] == 0
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
    assert front["license"] == "other" and front["library_name"] == "mlflow"
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


# --- findings from outside testing ---------------------------------------------------------------


def high_risk(card: dict) -> dict:
    """The demo card raised to risk tier high, every field that tier adds answered, approved by a non-author."""
    card["card"]["risk"]["ai_act_tier"] = "high"
    card["card"]["authors"].append({"name": "Carol Coder", "role": "ML engineer", "contact": "github:ccoder"})
    card["card"]["approvals"] = [{"name": "Bob Reviewer", "role": "risk officer", "decision": "approved",
                                  "date": "2026-11-27"}]
    for path in cards.REQUIRED_HIGH:
        if path == "card.approvals":
            continue
        *parents, leaf = path.split(".")
        node = card
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = ["Stated for the test."] if leaf == "foreseeable_misuse" else "Stated for the test."
    return card


@pytest.mark.parametrize("approver, author", [
    pytest.param("Demo Author", "Demo Author", id="same-name"),
    pytest.param("  demo   author ", "Demo Author", id="name-any-case-and-spacing"),
    pytest.param("ml-team@example.com", "Demo Author", id="author-contact"),
    pytest.param("ccoder", "Carol Coder", id="github-login-of-an-author"),
])
def test_a_high_risk_promotion_approved_by_an_author_is_refused(client, tracking_uri, model_name, tmp_path, evaluated,
                                                                approver, author):
    version, card, _ = evaluated
    base = ["--tracking-uri", tracking_uri, "--model", model_name, "--version", version]
    record_passing_verdict(client, model_name, version)
    assert call(transition, [*base, "--to", "staging"])[0] == 0
    code, built = build(tracking_uri, model_name, version, write_card(tmp_path, high_risk(card)))
    assert code == 0 and built["complete"], built
    code, result = call(transition, [*base, "--to", "production", "--expect-champion", "none", "--approver", approver])
    assert code == 1, result
    assert f"(card.authors: {author!r}) is an author of this high-risk card" in result["error"]
    assert aliases(client, model_name) == {"challenger": version}
    code, result = call(transition, [*base, "--to", "production", "--expect-champion", "none",
                                     "--approver", "Bob Reviewer"])
    assert code == 0, result
    assert aliases(client, model_name) == {"champion": version}


def test_the_card_gate_checks_the_resolved_approver_such_as_a_github_reviewer(tracking_uri, model_name, tmp_path,
                                                                              evaluated):
    """promote() passes the approver it resolved (from GitHub's approvals too) to the card gate."""
    from model_lifecycle.adapters import registry
    from model_lifecycle.api import lifecycle as api
    from model_lifecycle.errors import Refused

    version, card, _ = evaluated
    build(tracking_uri, model_name, version, write_card(tmp_path, high_risk(card)))
    client = registry.connect(tracking_uri)
    request = api.PromoteRequest(model_name, version, approval=api.Approval("Bob Reviewer"))
    with pytest.raises(Refused) as info:
        api._card_gate(client, request, version, {}, "ccoder")  # the GitHub reviewer, not the request's approver
    assert "the approver 'ccoder' (card.authors: 'Carol Coder') is an author of this high-risk card" in \
        info.value.message
    with pytest.raises(Refused) as info:  # every reviewer who approved the environment counts
        api._card_gate(client, request, version, {}, "bob-the-reviewer, ccoder")
    assert "the approver 'ccoder' (card.authors: 'Carol Coder') is an author" in info.value.message
    evidence: dict = {}
    assert api._card_gate(client, request, version, evidence, "bob-the-reviewer") == {"card_check": "passed"}
    assert evidence["card"].startswith("sha256:")


def test_below_high_risk_an_author_may_approve(client, tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    base = ["--tracking-uri", tracking_uri, "--model", model_name, "--version", version]
    record_passing_verdict(client, model_name, version)
    assert call(transition, [*base, "--to", "staging"])[0] == 0
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    code, result = call(transition, [*base, "--to", "production", "--expect-champion", "none",
                                     "--approver", "Demo Author"])
    assert code == 0, result


@pytest.mark.parametrize("value, missing", [
    pytest.param("N/A:", True, id="N/A-colon-without-reason"),
    pytest.param("N/A:   ", True, id="N/A-colon-and-spaces"),
    pytest.param("N/A.", True, id="N/A-period"),
    pytest.param("n/a -", True, id="n/a-dash"),
    pytest.param("N/A: TBD", True, id="N/A-with-a-placeholder-as-reason"),
    pytest.param("TODO: later", True, id="TODO-colon-text"),
    pytest.param("TBD - waiting", True, id="TBD-dash-text"),
    pytest.param("tbc after the audit", True, id="tbc-text"),
    pytest.param("FIXME", True, id="FIXME"),
    pytest.param("N/A: not distributed outside the company", False, id="N/A-with-a-reason"),
    pytest.param("N/A - no labels per band", False, id="N/A-dash-reason"),
    pytest.param("Todos los datos son públicos", False, id="word-starting-with-todo"),
    pytest.param("NAND-gate inputs only", False, id="word-starting-with-na"),
    pytest.param("None of the outputs reach people", False, id="sentence-starting-with-none"),
])
def test_placeholders_with_trailing_text_or_no_reason_are_missing(value, missing):
    assert cards.is_missing(value) is missing


@pytest.mark.parametrize("placeholder", ["N/A:", "N/A:   ", "TODO: later", "TBD - waiting"])
def test_build_and_check_agree_that_a_placeholder_with_text_is_missing(client, tracking_uri, model_name, tmp_path,
                                                                        evaluated, placeholder):
    version, card, _ = evaluated
    card["considerations"]["limitations"] = placeholder
    code, built = build(tracking_uri, model_name, version, write_card(tmp_path, card))
    assert code == 0 and not built["complete"] and built["missing"] == ["considerations.limitations"], built
    assert client.get_model_version(model_name, version).tags["lifecycle.card.complete"] == "false"
    code, checked = check(tracking_uri, model_name, version)
    assert code == 1 and checked["problems"] == ["considerations.limitations: missing"]


def test_an_unquoted_yaml_date_is_named_with_the_fix(tracking_uri, model_name, tmp_path, evaluated):
    version, _, _ = evaluated
    text = DEMO_CARD.read_text().replace(
        "  approvals: []\n", "  approvals:\n    - {name: Bob Reviewer, decision: approved, date: 2026-11-27}\n")
    path = tmp_path / "model-card.yml"
    path.write_text(text)
    code, result = build(tracking_uri, model_name, version, path)
    assert code == 2, result
    assert (f"{path}:8: card.approvals[0].date: Input should be a valid string; YAML read 2026-11-27 as a date: "
            'quote it to keep it as text, e.g. "2026-11-27"') in result["error"]
    path.write_text(text.replace("date: 2026-11-27", 'date: "2026-11-27"'))
    assert build(tracking_uri, model_name, version, path)[0] == 0


def test_people_render_as_text_not_as_yaml_mappings(tracking_uri, model_name, tmp_path, evaluated):
    version, card, _ = evaluated
    card["model_details"]["owners"].append({"name": "Risk office", "role": "oversight"})
    card["card"]["approvals"] = [{"name": "Bob Reviewer", "role": "lead", "decision": "approved", "date": "2026-11-27"}]
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    text = cards.render_markdown(cards.load_stored(registry_client(tracking_uri), model_name, version))
    assert ("- **Developed by / owners:** ML platform team (ml-team@example.com); Risk office (oversight)\n"
            in text), text
    assert "- Demo Author (ML engineer, ml-team@example.com)\n" in text
    assert "- Bob Reviewer (lead): approved on 2026-11-27\n" in text
    assert "name: " not in text and "contact: " not in text


def registry_client(tracking_uri):
    from model_lifecycle.adapters import registry

    return registry.connect(tracking_uri)


def test_the_hugging_face_export_is_what_the_hub_accepts(tracking_uri, model_name, tmp_path, evaluated):
    """Read back with huggingface_hub's own card classes (development set only): a Hub license id or
    `other` with name and link, Hub task ids, and one model-index result per slice."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData, metadata_eval_result
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    version, card, _ = evaluated
    base = ["export", "--tracking-uri", tracking_uri, "--model", model_name, "--version", version,
            "--format", "huggingface", "--output", str(tmp_path / "README.md")]
    build(tracking_uri, model_name, version, write_card(tmp_path, card))  # license "N/A: internal demonstration, ..."
    assert call(model_card, base)[0] == 0
    text = (tmp_path / "README.md").read_text()
    hub = ModelCard(text)
    data = hub.data
    assert isinstance(data, ModelCardData)
    assert data.license == "other" and data.license_name == "internal-demonstration-not-distributed"
    assert data.license_link == "LICENSE"
    assert data.pipeline_tag == "tabular-classification" and data.library_name == "mlflow"
    assert data.model_name == f"{model_name} v{version}"
    results: list[EvalResult] = data.eval_results
    assert {r.task_type for r in results} == {"tabular-classification"}
    assert {r.dataset_split for r in results} == {"test"}
    by_slice: dict = {}
    for r in results:
        by_slice.setdefault(r.dataset_config or "overall", {})[r.metric_type] = r.metric_value
    assert set(by_slice) == {"overall", "size_band.large", "size_band.medium", "size_band.small"}
    stored = cards.load_stored(registry_client(tracking_uri), model_name, version)
    for key, metrics in by_slice.items():
        expected = stored["facts"]["evaluation"]["slices"][key]["metrics"]
        assert metrics == {m: round(s["value"], 6) for m, s in expected.items() if s.get("value") is not None}
    # the model-index is exactly what the Hub's own writer makes of those results, and reads back the same
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["model-index"] == eval_results_to_model_index(data.model_name, results)
    assert model_index_to_eval_results(front["model-index"])[1] == results
    overall = next(r for r in results if r.dataset_config is None and r.metric_type == "roc_auc")
    made = metadata_eval_result(
        model_pretty_name=data.model_name, task_pretty_name="Tabular Classification", task_id="tabular-classification",
        metrics_pretty_name="roc_auc (overall)", metrics_id="roc_auc", metrics_value=overall.metric_value,
        dataset_pretty_name="Hold-out set", dataset_id="holdout", dataset_split="test",
        dataset_revision=overall.dataset_revision)
    assert made["model-index"][0]["results"][0]["metrics"][0]["value"] == overall.metric_value
    assert {k: v for k, v in made["model-index"][0]["results"][0]["dataset"].items()} == \
        front["model-index"][0]["results"][0]["dataset"]
    # no YAML mapping leaks into the body
    assert "- name: " not in text.split("---\n", 2)[2]

    # a Hub license id is kept as the id; a link given in the card is used for an own licence
    card["model_details"]["license"] = "Apache-2.0"
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    call(model_card, base)
    data = ModelCard((tmp_path / "README.md").read_text()).data
    assert data.license == "apache-2.0" and data.get("license_name") is None
    card["model_details"].update(license="Acme Model Licence 2.1", license_link="https://acme.example/licence")
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    call(model_card, base)
    data = ModelCard((tmp_path / "README.md").read_text()).data
    assert (data.license, data.license_name, data.license_link) == (
        "other", "acme-model-licence-2.1", "https://acme.example/licence")


def test_a_failing_card_check_lists_each_problem_once_and_one_error_line(tracking_uri, model_name, tmp_path, evaluated,
                                                                         capsys):
    version, card, _ = evaluated
    card["caveats_and_recommendations"] = "TBD"
    card["considerations"]["limitations"] = "TODO: later"
    build(tracking_uri, model_name, version, write_card(tmp_path, card))
    capsys.readouterr()
    code = model_card.main(["check", "--tracking-uri", tracking_uri, "--model", model_name, "--version", version])
    out, err = capsys.readouterr()
    assert code == 1
    for problem in ("considerations.limitations: missing", "caveats_and_recommendations: missing"):
        assert (out + err).count(problem) == 1, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the card of {model_name} v{version} is not ready: 2 problems (listed by field path)"]
