"""Every text a card becomes, all deterministic: canonical JSON and its digest, Markdown from the
templates, the diff against the champion's card, and the Hugging Face and CycloneDX exports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_lifecycle.core.cards.rules import AI_ACT_MAP, get_path, is_missing, required_paths
from model_lifecycle.core.cards.schema import NOT_PROVIDED

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def canonical(card: dict[str, Any]) -> str:
    return json.dumps(card, sort_keys=True, indent=2, default=str) + "\n"


def sha256(card: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(card).encode()).hexdigest()


def status(card: dict[str, Any]) -> str:
    return card["team"]["card"].get("status") or "draft"


# --- Markdown --------------------------------------------------------------------------------------


def _env() -> Environment:
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

    def inline(path: str) -> str:
        """A list field on one line (``a; b``), for a bullet that already has its label."""
        value = get_path(team, path)
        if isinstance(value, list) and not is_missing(value):
            return "; ".join(_item(v) for v in value if not is_missing(v))
        return field(path).replace("\n", " ")

    return _env().get_template("model_card.md.j2").render(
        card=card, team=team, facts=facts, field=field, inline=inline, ai_act=AI_ACT_MAP,
        NOT_PROVIDED=NOT_PROVIDED, slices=_ordered_slices(facts),
    )


_ITEM_ORDER = ("name", "role", "contact", "decision", "date")
_PERSON = {"name", "role", "contact", "decision", "date"}


def _item(value: Any) -> str:
    """A list entry on one line, as a reader writes it: ``Ada Lovelace (ML engineer, ada@example.com)``
    for a person, ``... : approved on 2026-11-27`` for an approval; keys in a fixed order so rendering
    never depends on input order."""
    if not isinstance(value, dict):
        return str(value)
    given = {k: v for k, v in value.items() if v not in (None, "", [])}
    if given and set(given) <= _PERSON:
        details = ", ".join(str(given[k]) for k in ("role", "contact") if k in given)
        text = str(given.get("name") or "unnamed") + (f" ({details})" if details else "")
        if "decision" in given:
            text += f": {given['decision']}" + (f" on {given['date']}" if "date" in given else "")
        return text
    keys = sorted(given, key=lambda k: (_ITEM_ORDER.index(k) if k in _ITEM_ORDER else len(_ITEM_ORDER), k))
    return ", ".join(f"{k}: {given[k]}" for k in keys)


def _ordered_slices(facts: dict[str, Any]) -> list[tuple[str, Any]]:
    slices = (facts.get("evaluation") or {}).get("slices") or {}
    return sorted(slices.items(), key=lambda kv: (kv[0] != "overall", kv[0]))


# --- diff against the champion ---------------------------------------------------------------------


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


# --- exports ---------------------------------------------------------------------------------------


# License ids the Hugging Face Hub knows (https://huggingface.co/docs/hub/repositories-licenses).
# Any other licence is exported as ``license: other`` with ``license_name`` and ``license_link``.
HUB_LICENSES = frozenset("""
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
    afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
    cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
    cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
    gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql
    ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3 gemma
    unknown other
""".split())
_LICENSE_ALIASES = {"apache-2": "apache-2.0", "apache-license-2.0": "apache-2.0", "apache-license,-version-2.0":
                    "apache-2.0", "mit-license": "mit", "cc0": "cc0-1.0", "the-unlicense": "unlicense"}

# The Hub's task ids for what the toolkit evaluates (tabular data); the card's task follows its metrics.
HUB_TASKS = {"classification": ("tabular-classification", "Tabular Classification"),
             "regression": ("tabular-regression", "Tabular Regression")}
_REGRESSION_METRICS = {"rmse", "mae", "mse", "r2"}


def hub_license(team: dict[str, Any]) -> dict[str, str]:
    """The Hub's license fields for the card's licence: a Hub id as ``license``; anything else
    (an internal licence, "N/A: not distributed") as ``other`` with a ``license_name`` slug and a
    ``license_link`` (the card's ``model_details.license_link``, else the repository's LICENSE file)."""
    import re

    details = team.get("model_details") or {}
    text = " ".join(str(details.get("license") or "").split())
    wanted = text.lower().replace(" ", "-")
    wanted = _LICENSE_ALIASES.get(wanted, wanted)
    if wanted in HUB_LICENSES and wanted != "other":
        return {"license": wanted}
    reason = re.sub(r"^n/?a(?![a-z0-9])[\s.:;,!\-–—]*", "", text, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9.]+", "-", reason.lower()).strip("-.")[:64].rstrip("-.") or "proprietary"
    return {"license": "other", "license_name": slug, "license_link": details.get("license_link") or "LICENSE"}


def hub_task(facts: dict[str, Any]) -> tuple[str, str]:
    """(task id, name) on the Hub: regression when the evaluation measured regression metrics."""
    overall = ((facts.get("evaluation") or {}).get("slices") or {}).get("overall", {}).get("metrics", {})
    return HUB_TASKS["regression" if set(overall) & _REGRESSION_METRICS else "classification"]


def hub_model_index(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The Hub's ``model-index``: one result for the whole hold-out and one per evaluated slice (its key
    as the dataset ``config``), each with its metrics; slices too small to measure have no entry."""
    facts = card["facts"]
    evaluation = facts.get("evaluation") or {}
    task_id, task_name = hub_task(facts)
    results = []
    for key, entry in _ordered_slices(facts):
        metrics = [{"type": metric, "value": round(float(stats["value"]), 6), "name": f"{metric} ({key})"}
                   for metric, stats in sorted(entry.get("metrics", {}).items()) if stats.get("value") is not None]
        if not metrics:
            continue
        dataset: dict[str, Any] = {"type": "holdout", "split": "test",
                                   "name": "Hold-out set" if key == "overall" else f"Hold-out set, slice {key}"}
        if key != "overall":
            dataset["config"] = key
        if evaluation.get("holdout_sha256"):
            dataset["revision"] = evaluation["holdout_sha256"]
        results.append({"task": {"type": task_id, "name": task_name}, "dataset": dataset, "metrics": metrics})
    registry = facts["registry"]
    return [{"name": f"{registry['registered_model']} v{registry['version']}", "results": results}]


def export_huggingface(card: dict[str, Any]) -> str:
    """A Hugging Face README the Hub accepts: YAML front matter (a Hub license id or ``other`` with its
    name and link, the Hub task as ``pipeline_tag``, tags, and a ``model-index`` with the overall and
    per-slice results) + the rendered card."""
    import yaml

    team, facts = card["team"], card["facts"]
    front: dict[str, Any] = {
        **hub_license(team),
        "library_name": "mlflow",
        "pipeline_tag": hub_task(facts)[0],
        "tags": sorted({"mlflow", *facts.get("flavors", [])}),
    }
    index = hub_model_index(card)
    if index[0]["results"]:  # the Hub refuses a model-index without results
        front["model-index"] = index
    return "---\n" + yaml.safe_dump(front, sort_keys=True, allow_unicode=True) + "---\n\n" + render_markdown(card)


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
