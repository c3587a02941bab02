"""Register a logged model as a new version, tagged with its lineage, and record it in the audit record.

Lineage tags (all under ``lifecycle.``): the training run, the git commit, the GitHub run URL when
present, and each dataset's sha256 digest and row count as logged by the training run.
"""

from __future__ import annotations

from typing import Any, Sequence

from model_lifecycle import tags
from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/register.py --model churn --model-uri models:/m-0123456789abcdef
  python scripts/register.py --model churn --model-uri runs:/<run_id>/model --json
"""



def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("register.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument(
        "--model-uri", required=True, help="The logged model: models:/m-<id> (MLflow 3) or runs:/<run_id>/<path>."
    )
    parser.add_argument("--git-commit", help="Commit that produced the model (default: the training run's, else $GITHUB_SHA or HEAD).")
    parser.add_argument("--pull-request", metavar="N",
                        help="Register the candidate of pull request N (default: the Actions run's pull request, "
                             "if it builds one). The relay does not announce it; merging the pull request releases it.")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Extra version tag; repeatable.")
    cli.add_actor_flags(parser)
    return parser


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--tag {item!r} must look like KEY=VALUE")
        found[key.strip()] = value
    return found


def call(args: Any) -> Any:
    from model_lifecycle.api import lifecycle as api

    return api.register(api.RegisterRequest(
        args.model, args.model_uri, git_commit=args.git_commit, tags=parse_tags(args.tag), reason=args.reason,
        actor=args.actor, tracking_uri=args.tracking_uri, pull_request=args.pull_request,
    ))


def render(result: dict[str, Any]) -> None:
    print(f"✔ registered {result['model']} version {result['version']}")
    print(f"  source: {result['source']}")
    for key in (tags.GIT_COMMIT, tags.TRAINING_RUN_ID):
        if key in result["tags"]:
            print(f"  {key.split('.', 1)[1]}: {result['tags'][key]}")


main = cli.command(build_parser, call, render)
