"""Evaluate one model on the policy's hold-out: metrics overall and per slice, with support and intervals.

Logs an evaluation run linked to the model version (metric keys ``<metric>/<slice_key>``, sorted and
URL-safe) and writes a JSON result. Does not run ``mlflow.models.evaluate`` (26-40x slower).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/evaluate.py --model-uri models:/churn/7 --policy model-policy.yml
  python scripts/evaluate.py --model-uri models:/churn@champion --output champion-eval.json --no-log
"""

_REGISTERED = re.compile(r"^models:/([^/@]+)(?:/(\d+)|@([A-Za-z0-9_-]+))$")


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("evaluate.py", __doc__.splitlines()[0], EXAMPLES)
    parser.add_argument("--model-uri", required=True, help="models:/<name>/<version>, models:/<name>@<alias> or any MLflow model URI.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (default: model-policy.yml).")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--output", default="evaluation.json", help="Where the JSON result is written.")
    parser.add_argument("--experiment", default="model-evaluation", help="Experiment of the evaluation runs.")
    parser.add_argument("--no-log", action="store_true", help="Do not log an evaluation run to MLflow.")
    return parser


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import evaluation
    from model_lifecycle.core import policy as policies
    from model_lifecycle.adapters import registry
    from model_lifecycle.core import verdict

    policy = policies.load(args.policy)
    client = registry.connect(args.tracking_uri)
    name = version = source = None
    match = _REGISTERED.match(args.model_uri)
    if match:
        name = match.group(1)
        if match.group(2):
            mv = registry.get_version(client, name, match.group(2))
        else:
            registry.get_model(client, name)  # a missing model is named as such, not as a missing alias
            with registry.mlflow_errors(not_found=f"model {name!r} has no alias @{match.group(3)}"):
                mv = client.get_model_version_by_alias(name, match.group(3))
        version, source = str(mv.version), mv.source
    holdout = evaluation.prepare_holdout(policy, args.holdout)
    evaluated = evaluation.evaluate_uri(policy, holdout.frame, holdout.y, args.model_uri, holdout.groups)
    result = {
        "model_uri": args.model_uri, "model": name, "version": version, "holdout": holdout.info,
        "task": policy.task, "results": verdict.serialise_results(evaluated.results),
    }
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    Path(args.output).write_text(text + "\n", encoding="utf-8")
    run_id = None
    if not args.no_log:
        run_id = evaluation.log_evaluation(
            client, experiment=args.experiment, name=name, version=version, model_uri=args.model_uri,
            source=source, results=evaluated.results, holdout=holdout.info, documents={"evaluation.json": text},
        )
    overall = evaluated.results[evaluation.OVERALL]
    return {"ok": True, "output": str(Path(args.output).resolve()), "evaluation_run_id": run_id,
            "model_uri": args.model_uri, "version": version, "rows": holdout.info["rows"],
            "overall": overall.metrics, "slices": len(evaluated.results) - 1}


def render(result: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k}={v['value']:.4f}" for k, v in result["overall"].items() if v["value"] is not None)
    print(f"✔ evaluated {result['model_uri']} on {result['rows']} rows ({result['slices']} slices): {metrics}")
    print(f"  result: {result['output']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

