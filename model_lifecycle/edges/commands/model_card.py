"""Model cards that gate promotion: init a skeleton, build from MLflow facts, check, diff, export.

  init    write a model-card.yml skeleton with guidance per field
  build   merge the team's card with facts from MLflow, validate, store JSON + Markdown with the version
  check   the completeness gate (exit 0 complete, 1 with every missing field by path)
  diff    Markdown diff against @champion's card, for the pull-request comment
  export  json | markdown | huggingface | cyclonedx
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from model_lifecycle import settings
from model_lifecycle.core.lifecycle import AliasNames
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/model_card.py init --model churn
  python scripts/model_card.py build --model churn --version 7 --card model-card.yml
  python scripts/model_card.py check --model churn --version 7
  python scripts/model_card.py diff --model churn --version 7 --output card-diff.md
  python scripts/model_card.py export --model churn --version 7 --format huggingface --output README.md
"""
FORMATS = ("json", "markdown", "huggingface", "cyclonedx")  # as api.cards.FORMATS, without importing it for --help


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
            command.add_argument("--champion-alias", default=settings.CHAMPION_ALIAS.get(),
                                 help="Alias to compare with (default: champion, or $LIFECYCLE_CHAMPION_ALIAS).")
        if name == "export":
            command.add_argument("--format", choices=FORMATS, default="markdown", help="Output format (default: markdown).")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api import cards as api

    if args.command == "init":
        return api.init_card(args.model, args.output, args.force)
    request = api.CardRequest(
        args.model, args.version, card=getattr(args, "card", "model-card.yml"), output=getattr(args, "output", None),
        format=getattr(args, "format", "markdown"), tracking_uri=args.tracking_uri,
        aliases=replace(AliasNames.from_settings(), champion=getattr(args, "champion_alias", None)
                        or settings.CHAMPION_ALIAS.get()),
    )
    return {"build": api.build_card, "check": api.check_card, "diff": api.diff_card,
            "export": api.export_card}[args.command](request)


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
    elif command == "diff":
        print(result["markdown"])
    elif result.get("text") is not None:
        sys.stdout.write(result["text"])


main = cli.command(build_parser, call, render)
