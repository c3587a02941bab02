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
