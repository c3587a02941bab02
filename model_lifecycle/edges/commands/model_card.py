"""Model cards that gate promotion: init a skeleton, build from MLflow facts, check, diff, export.

  init    write a model-card.yml skeleton with guidance per field
  build   merge the team's card with facts from MLflow, validate, store JSON + Markdown with the version
  check   the completeness gate (exit 0 complete, 1 with every missing field by path)
  diff    Markdown diff against @champion's card, for the pull-request comment
  export  json | markdown | huggingface | cyclonedx
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import EXIT_OK, EXIT_REFUSED, BadInput

EXAMPLES = """\
  python scripts/model_card.py init --model churn
  python scripts/model_card.py build --model churn --version 7 --card model-card.yml
  python scripts/model_card.py check --model churn --version 7
  python scripts/model_card.py diff --model churn --version 7 --output card-diff.md
  python scripts/model_card.py export --model churn --version 7 --format huggingface --output README.md
"""
FORMATS = ("json", "markdown", "huggingface", "cyclonedx")


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("model_card.py", __doc__.splitlines()[0], EXAMPLES, shared=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cli.ArgumentParser)
    shared = [cli.shared_flags()]
    init = sub.add_parser("init", help="Write a model-card.yml skeleton.", parents=shared)
    init.add_argument("--model", required=True, help="Registered model name (for the header).")
    init.add_argument("--output", default="model-card.yml", help="Where to write it (default: model-card.yml).")
    init.add_argument("--force", action="store_true", help="Overwrite an existing file.")
    for name, text in (("build", "Build, validate and store the card of a version."),
                       ("check", "Completeness gate for a version's stored card."),
                       ("diff", "Markdown diff of a version's card against @champion's."),
                       ("export", "Export a version's stored card.")):
        command = sub.add_parser(name, help=text, parents=shared)
        command.add_argument("--model", required=True, help="Registered model name.")
        command.add_argument("--version", required=True, help="Model version.")
        if name == "build":
            command.add_argument("--card", default="model-card.yml", help="The team's card (default: model-card.yml).")
        if name in ("diff", "export"):
            command.add_argument("--output", help="Write to this file instead of stdout.")
        if name == "diff":
            command.add_argument("--champion-alias", default="champion", help="Alias to compare with (default: champion).")
        if name == "export":
            command.add_argument("--format", choices=FORMATS, default="markdown", help="Output format (default: markdown).")
    return parser


def load_team_card(path: str) -> Any:
    from model_lifecycle.core import cards
    from model_lifecycle.core import yamlcheck

    file = Path(path)
    if not file.is_file():
        raise BadInput(f"card file {path!r} not found", hint="create one with: model_card.py init --model NAME")
    team, _ = yamlcheck.parse_model(
        file.read_text(encoding="utf-8"), path, cards.TeamCard, what="a model card", needs="card and model_details"
    )
    return team


def _init(args: Any) -> dict[str, Any]:
    from jinja2 import Environment, FileSystemLoader

    from model_lifecycle.core import cards

    output = Path(args.output)
    if output.exists() and not args.force:
        raise BadInput(f"{args.output} already exists", hint="pass --force to overwrite it")
    text = Environment(loader=FileSystemLoader(cards.TEMPLATES), keep_trailing_newline=True).get_template(
        "model-card.yml.j2").render(model=args.model)
    output.write_text(text, encoding="utf-8")
    return {"ok": True, "command": "init", "path": str(output.resolve())}


def _build(args: Any, client: Any, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards
    from model_lifecycle.adapters import registry

    team = load_team_card(args.card)  # validated before anything is read or written
    with registry.mlflow_errors():
        facts = cards.collect_facts(client, args.model, version)
        card = cards.build_card(team, facts, int(time.time() * 1000))
        markdown = cards.render_markdown(card)
        stored = cards.store(client, card, markdown)
    missing = cards.missing_fields(card["team"])
    return {"ok": True, "command": "build", "model": args.model, "version": version, "status": cards.status(card),
            "complete": not missing, "missing": missing, **stored}


def _check(args: Any, client: Any, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards

    card, problems = cards.check_version(client, args.model, version)
    if problems:
        cli.report_error("Model card incomplete", f"card of {args.model} v{version}: " + "; ".join(problems), EXIT_REFUSED)
    return {"ok": True, "command": "check", "model": args.model, "version": version, "complete": not problems,
            "problems": problems, "sha256": cards.sha256(card) if card else None,
            "exit_code": EXIT_OK if not problems else EXIT_REFUSED}


def _stored(client: Any, name: str, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards

    card = cards.load_stored(client, name, version)
    if card is None:
        raise BadInput(f"no model card was built for {name!r} v{version}", hint="run model_card.py build first")
    return card


def _emit(text: str, output: str | None) -> str | None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        return str(Path(output).resolve())
    sys.stdout.write(text)
    return None


def _diff(args: Any, client: Any, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards
    from model_lifecycle.adapters import registry

    card = _stored(client, args.model, version)
    champion_version = registry.alias_map(registry.get_model(client, args.model)).get(args.champion_alias)
    champion = cards.load_stored(client, args.model, champion_version) if champion_version else None
    text = cards.diff_markdown(card, champion)
    cli.append_step_summary(text)
    return {"ok": True, "command": "diff", "champion": champion_version, "path": _emit(text, args.output), "markdown": text}


def _export(args: Any, client: Any, version: str) -> dict[str, Any]:
    from model_lifecycle.core import cards

    card = _stored(client, args.model, version)
    if args.format == "json":
        text = cards.canonical(card)
    elif args.format == "markdown":
        text = cards.render_markdown(card)
    elif args.format == "huggingface":
        text = cards.export_huggingface(card)
    else:
        text = json.dumps(cards.export_cyclonedx(card), indent=2, sort_keys=True) + "\n"
    return {"ok": True, "command": "export", "format": args.format, "path": _emit(text, args.output)}


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.adapters import registry

    if args.command == "init":
        return _init(args)
    version = registry.parse_version(args.version)
    client = registry.connect(args.tracking_uri)
    handler = {"build": _build, "check": _check, "diff": _diff, "export": _export}[args.command]
    return handler(args, client, version)


def render(result: dict[str, Any]) -> None:
    command = result["command"]
    if command == "init":
        print(f"✔ wrote {result['path']}: fill in every TODO, then run model_card.py build")
    elif command == "build":
        state = "complete" if result["complete"] else f"incomplete ({len(result['missing'])} fields missing)"
        print(f"✔ built the card of {result['model']} v{result['version']}: {result['status']}, {state}")
        print(f"  {result['uri']}  {result['sha256']}")
        for path in result["missing"]:
            print(f"  missing: {path}")
    elif command == "check":
        if result["complete"]:
            print(f"✔ card of {result['model']} v{result['version']} is complete ({result['sha256']})")
        else:
            print(f"✘ card of {result['model']} v{result['version']} is not ready:")
            for problem in result["problems"]:
                print(f"  - {problem}")
    elif result.get("path"):
        print(f"✔ wrote {result['path']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

