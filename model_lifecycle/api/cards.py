"""Model cards as steps: init a skeleton, build from MLflow facts, check (the gate), diff, export."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.errors import EXIT_REFUSED, BadInput, Refused
from model_lifecycle.results import Result

FORMATS = ("json", "markdown", "huggingface", "cyclonedx")


@dataclass
class CardResult(Result):
    """``command`` names the card step; the other fields are those that step fills."""

    command: str
    model: str | None = None
    version: str | None = None
    path: str | None = None  # the file written (init, diff and export with an output)
    text: str | None = None  # export without an output: the exported document
    status: str | None = None
    complete: bool | None = None
    missing: list[str] | None = None
    problems: list[str] | None = None
    sha256: str | None = None
    uri: str | None = None
    champion: str | None = None
    markdown: str | None = None
    format: str | None = None
    summary: str = field(default="", repr=False)
    omit_when_none = ("model", "version", "text", "status", "complete", "missing", "problems", "uri", "champion",
                      "markdown", "format")

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return EXIT_REFUSED if self.command == "check" and not self.complete else 0


def init_card(model: str, output: str = "model-card.yml", force: bool = False) -> CardResult:
    """Write a model-card.yml skeleton with guidance per field."""
    from jinja2 import Environment, FileSystemLoader

    from model_lifecycle.core import cards

    target = Path(output)
    if target.exists() and not force:
        raise BadInput(f"{output} already exists", hint="pass --force to overwrite it")
    text = Environment(loader=FileSystemLoader(cards.TEMPLATES), keep_trailing_newline=True).get_template(
        "model-card.yml.j2").render(model=model)
    target.write_text(text, encoding="utf-8")
    return CardResult("init", path=str(target.resolve()))


@dataclass(frozen=True)
class CardRequest:
    model: str
    version: str | int
    card: str = "model-card.yml"  # build: the team's card
    output: str | None = None  # diff, export: the file to write (export without it returns the text)
    format: str = "markdown"  # export: json | markdown | huggingface | cyclonedx
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)  # diff: compare with @champion
    tracking_uri: str | None = None


def load_team_card(path: str) -> Any:
    from model_lifecycle.core import cards, yamlcheck

    file = Path(path)
    if not file.is_file():
        raise BadInput(f"card file {path!r} not found", hint="create one with: model_card.py init --model NAME")
    team, _ = yamlcheck.parse_model(
        file.read_text(encoding="utf-8"), path, cards.TeamCard, what="a model card", needs="card and model_details"
    )
    return team


def build_card(request: CardRequest) -> CardResult:
    """Merge the team's card with facts from MLflow, validate it, store JSON and Markdown with the version."""
    from model_lifecycle.core import cards

    version = registry.parse_version(request.version)
    team = load_team_card(request.card)  # validated before anything is read or written
    client = registry.connect(request.tracking_uri)
    with registry.mlflow_errors():
        facts = cards.collect_facts(client, request.model, version)
        card = cards.build_card(team, facts, int(time.time() * 1000))
        stored = cards.store(client, card, cards.render_markdown(card))
    missing = stored["missing"]  # the same decision the card gate makes (cards.rules.gaps)
    return CardResult("build", request.model, version, status=cards.status(card), complete=not missing,
                      missing=missing, sha256=stored["sha256"], uri=stored["uri"])


def check_card(request: CardRequest) -> CardResult:
    """The completeness gate: refuses with every missing or stale field by path."""
    from model_lifecycle.core import cards

    version = registry.parse_version(request.version)
    client = registry.connect(request.tracking_uri)
    card, problems = cards.check_version(client, request.model, version)
    result = CardResult("check", request.model, version, complete=not problems, problems=problems,
                        sha256=cards.sha256(card) if card else None)
    if problems:  # each problem is in the result; the error line counts them
        raise Refused(f"the card of {request.model} v{version} is not ready: {len(problems)} "
                      f"problem{'s' if len(problems) != 1 else ''} (listed by field path)", result=result,
                      title="Model card incomplete")
    return result


def diff_card(request: CardRequest) -> CardResult:
    """Markdown diff of the version's card against the champion's (for the pull-request comment)."""
    from model_lifecycle.core import cards

    version = registry.parse_version(request.version)
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    card = _stored(client, request.model, version)
    champion_version = registry.alias_map(registry.get_model(client, request.model)).get(names.champion)
    champion = cards.load_stored(client, request.model, champion_version) if champion_version else None
    text = cards.diff_markdown(card, champion)
    return CardResult("diff", request.model, version, path=_write(text, request.output), champion=champion_version,
                      markdown=text, summary=text)


def export_card(request: CardRequest) -> CardResult:
    """The stored card as JSON, Markdown, a Hugging Face README or a CycloneDX 1.6 model card."""
    from model_lifecycle.core import cards

    if request.format not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}, got {request.format!r}")
    version = registry.parse_version(request.version)
    client = registry.connect(request.tracking_uri)
    card = _stored(client, request.model, version)
    if request.format == "json":
        text = cards.canonical(card)
    elif request.format == "markdown":
        text = cards.render_markdown(card)
    elif request.format == "huggingface":
        text = cards.export_huggingface(card)
    else:
        text = json.dumps(cards.export_cyclonedx(card), indent=2, sort_keys=True) + "\n"
    path = _write(text, request.output)
    return CardResult("export", request.model, version, path=path, text=None if path else text, format=request.format)


def _stored(client: Any, name: str, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards

    card = cards.load_stored(client, name, version)
    if card is None:
        raise BadInput(f"no model card was built for {name!r} v{version}", hint="run model_card.py build first")
    return card


def _write(text: str, output: str | None) -> str | None:
    if not output:
        return None
    Path(output).write_text(text, encoding="utf-8")
    return str(Path(output).resolve())
