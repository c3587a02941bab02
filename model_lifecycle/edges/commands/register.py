"""Register a logged model as a new version, tagged with its lineage, and record it in the audit record.

Lineage tags (all under ``lifecycle.``): the training run, the git commit, the GitHub run URL when
present, and each dataset's sha256 digest and row count as logged by the training run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  python scripts/register.py --model churn --model-uri models:/m-0123456789abcdef
  python scripts/register.py --model churn --model-uri runs:/<run_id>/model --json
"""

_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]+)$")
_RUN_URI = re.compile(r"^runs:/([0-9a-f]{32})/.+$")


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("register.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument(
        "--model-uri", required=True, help="The logged model: models:/m-<id> (MLflow 3) or runs:/<run_id>/<path>."
    )
    parser.add_argument("--git-commit", help="Commit that produced the model (default: the training run's, else $GITHUB_SHA or HEAD).")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Extra version tag; repeatable.")
    cli.add_actor_flags(parser)
    return parser


def training_run_id(client: Any, model_uri: str) -> str:
    """The run that produced the model, from either URI form; bad URIs are named."""
    from model_lifecycle.adapters.registry import mlflow_errors

    logged = _LOGGED_MODEL.match(model_uri)
    if logged:
        with mlflow_errors(not_found=f"--model-uri {model_uri!r}: no logged model with that id"):
            model = client.get_logged_model(logged.group(1))
        if not model.source_run_id:
            raise BadInput(f"--model-uri {model_uri!r} was not logged from a run; lineage needs the training run")
        return model.source_run_id
    run = _RUN_URI.match(model_uri)
    if run:
        return run.group(1)
    raise BadInput(
        f"--model-uri {model_uri!r} is not a logged model URI",
        hint="use models:/m-<id> as printed by log_model, or runs:/<run_id>/<artifact_path>",
    )


def lineage_tags(run: Any, git_commit: str | None) -> dict[str, str]:
    from model_lifecycle.core import audit
    from model_lifecycle.core import lineage

    tags = {"lifecycle.training_run_id": run.info.run_id}
    commit = git_commit or run.data.tags.get("lifecycle.git_commit") or run.data.tags.get(
        "mlflow.source.git.commit"
    ) or lineage.git_commit()
    if commit:
        tags["lifecycle.git_commit"] = commit
    url = audit.github_run_url()
    if url:
        tags["lifecycle.github_run_url"] = url
    for name, facts in lineage.dataset_facts(run).items():
        for field in ("sha256", "rows", "context", "mlflow_digest"):
            if facts.get(field):
                tags[f"lifecycle.dataset.{name}.{field}"] = facts[field]
    return tags


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--tag {item!r} must look like KEY=VALUE")
        tags[key.strip()] = value
    return tags


def _run(args: Any) -> dict[str, Any]:
    import mlflow

    from model_lifecycle.core import audit
    from model_lifecycle.adapters import registry

    extra = parse_tags(args.tag)
    if not args.model.strip() or any(c in args.model for c in "/:"):
        raise BadInput(f"--model {args.model!r} is not a valid registered model name (no '/' or ':')")
    client = registry.connect(args.tracking_uri)
    run_id = training_run_id(client, args.model_uri)
    with registry.mlflow_errors(not_found=f"--model-uri {args.model_uri!r}: training run {run_id} not found"):
        run = client.get_run(run_id)
    tags = {**lineage_tags(run, args.git_commit), **extra}
    tags["lifecycle.registered_by"] = audit.actor(args.actor)
    with registry.mlflow_errors():
        version = mlflow.register_model(args.model_uri, args.model, tags=tags)
    model = registry.get_model(client, args.model)
    event = audit.new_event(
        "register", args.model, str(version.version), reason=args.reason, actor_name=args.actor,
        details={"source": version.source, "training_run_id": run_id, "git_commit": tags.get("lifecycle.git_commit")},
    )
    audit.append(client, model, event)
    return {
        "ok": True,
        "model": args.model,
        "version": str(version.version),
        "model_uri": f"models:/{args.model}/{version.version}",
        "source": version.source,
        "tags": tags,
    }


def render(result: dict[str, Any]) -> None:
    print(f"✔ registered {result['model']} version {result['version']}")
    print(f"  source: {result['source']}")
    for key in ("lifecycle.git_commit", "lifecycle.training_run_id"):
        if key in result["tags"]:
            print(f"  {key.split('.', 1)[1]}: {result['tags'][key]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

