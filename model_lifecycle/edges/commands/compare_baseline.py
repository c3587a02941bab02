"""The gate: evaluate a candidate and the champion on the same hold-out and apply the policy.

Writes a JSON verdict (every gate with candidate value, champion value, delta, interval, pass/fail
and reason) and a Markdown report for a job summary or PR comment. Exit 0 pass, 1 fail. With
--stage, a passing candidate becomes @challenger, with the verdict's digest in the audit record.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.adapters import registry
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/compare_baseline.py --model churn --candidate 7 --policy model-policy.yml
  python scripts/compare_baseline.py --model churn --candidate 7 --baseline 5 --report report.md --stage
  python scripts/compare_baseline.py --model churn --candidate 7 --engine spark --holdout s3a://ml/churn/holdout/
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("compare_baseline.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--candidate", required=True, type=registry.version_arg, metavar="VERSION", help="The candidate model version.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (default: model-policy.yml).")
    parser.add_argument("--baseline", type=registry.version_arg, metavar="VERSION", help="Compare with this version instead of @champion.")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--output", default="verdict.json", help="Where the JSON verdict is written (default: verdict.json).")
    parser.add_argument("--report", default="report.md", help="Where the Markdown report is written (default: report.md).")
    parser.add_argument("--stage", action="store_true", help="On pass, set @challenger to the candidate (audited).")
    parser.add_argument("--experiment", default="model-evaluation", help="Experiment of the evaluation runs.")
    parser.add_argument("--no-log", action="store_true", help="Do not log an evaluation run to MLflow.")
    parser.add_argument("--engine", choices=("local", "spark"), default=None,
                        help="Where the hold-out is evaluated: local (this process, pyarrow batches) or spark "
                             "(mlflow.pyfunc.spark_udf and Spark aggregations; needs the spark extra). "
                             "Default: the policy's engine, else local.")
    cli.add_actor_flags(parser)
    cli.add_alias_flags(parser)
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.gate import CompareRequest, compare

    return compare(CompareRequest(
        args.model, args.candidate, policy=args.policy, baseline=args.baseline, holdout=args.holdout,
        output=args.output, report=args.report, stage=args.stage, experiment=args.experiment, log=not args.no_log,
        reason=args.reason, actor=args.actor, aliases=cli.alias_names(args), tracking_uri=args.tracking_uri,
        progress=cli.Progress(args.json), engine=args.engine,
    ))


def render(result: dict[str, Any]) -> None:
    mark = "✔ passes" if result["passed"] else "✘ fails"
    against = f"champion v{result['baseline']}" if result["baseline"] else "floors only (no champion)"
    print(f"{mark}: {result['model']} v{result['candidate']} vs {against}")
    for reason in result["failures"]:
        print(f"  - {reason}")
    print(f"  verdict: {result['verdict_path']}\n  report:  {result['report_path']}")
    if result["staged"]:
        print("  staged as challenger")


main = cli.command(build_parser, call, render)
