"""The gate: evaluate a candidate and the champion on the same hold-out and apply the policy.

Writes a JSON verdict (every gate with candidate value, champion value, delta, interval, pass/fail
and reason) and a Markdown report for a job summary or PR comment. Exit 0 pass, 1 fail. With
--stage, a passing candidate becomes @challenger, with the verdict's digest in the audit record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import EXIT_OK, EXIT_REFUSED

EXAMPLES = """\
  python scripts/compare_baseline.py --model churn --candidate 7 --policy model-policy.yml
  python scripts/compare_baseline.py --model churn --candidate 7 --baseline 5 --report report.md --stage
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("compare_baseline.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--candidate", required=True, metavar="VERSION", help="The candidate model version.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (default: model-policy.yml).")
    parser.add_argument("--baseline", metavar="VERSION", help="Compare with this version instead of @champion.")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--output", default="verdict.json", help="Where the JSON verdict is written (default: verdict.json).")
    parser.add_argument("--report", default="report.md", help="Where the Markdown report is written (default: report.md).")
    parser.add_argument("--stage", action="store_true", help="On pass, set @challenger to the candidate (audited).")
    parser.add_argument("--experiment", default="model-evaluation", help="Experiment of the evaluation runs.")
    parser.add_argument("--no-log", action="store_true", help="Do not log an evaluation run to MLflow.")
    cli.add_actor_flags(parser)
    cli.add_alias_flags(parser)
    return parser


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.core import evaluation
    from model_lifecycle.core import lifecycle
    from model_lifecycle.core import policy as policies
    from model_lifecycle.adapters import registry
    from model_lifecycle.core import verdict as verdicts

    policy = policies.load(args.policy)
    names = lifecycle.AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias).validated()
    candidate_version = registry.parse_version(args.candidate, "--candidate")
    baseline_version = registry.parse_version(args.baseline, "--baseline") if args.baseline else None
    client = registry.connect(args.tracking_uri)
    model = registry.get_model(client, args.model)
    candidate_mv = registry.get_version(client, args.model, candidate_version)
    if baseline_version is None:
        baseline_version = registry.alias_map(model).get(names.champion)
    if baseline_version == candidate_version:
        baseline_version = None  # re-evaluating the champion itself: floors only
    baseline_mv = registry.get_version(client, args.model, baseline_version) if baseline_version else None

    holdout = evaluation.prepare_holdout(policy, args.holdout)
    cand_uri = f"models:/{args.model}/{candidate_version}"
    cand = evaluation.evaluate_uri(policy, holdout.frame, holdout.y, cand_uri, holdout.groups)
    base = None
    base_uri = f"models:/{args.model}/{baseline_version}" if baseline_version else None
    if base_uri:
        base = evaluation.evaluate_uri(policy, holdout.frame, holdout.y, base_uri, holdout.groups)

    checks = verdicts.decide(
        policy, cand.results, base.results if base else None, holdout.y,
        cand.predictions, base.predictions if base else None,
    )
    verdict = verdicts.build(
        model=args.model,
        candidate={"version": candidate_version, "uri": cand_uri, "source": candidate_mv.source},
        baseline={"version": baseline_version, "uri": base_uri, "source": baseline_mv.source} if baseline_mv else None,
        policy=policy, policy_path=str(Path(args.policy).resolve()), holdout=holdout.info, checks=checks,
        cand_results=cand.results, base_results=base.results if base else None,
    )
    digest = verdicts.digest(verdict)
    report = verdicts.render_markdown(verdict)
    Path(args.output).write_text(json.dumps(verdict, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    Path(args.report).write_text(report, encoding="utf-8")
    cli.append_step_summary(report)

    run_id = None
    if not args.no_log:
        run_id = evaluation.log_evaluation(
            client, experiment=args.experiment, name=args.model, version=candidate_version, model_uri=cand_uri,
            source=candidate_mv.source, results=cand.results, holdout=holdout.info,
            documents={"verdict.json": json.dumps(verdict, indent=2, sort_keys=True, default=str), "report.md": report},
        )
        with registry.mlflow_errors():
            for key, value in (("lifecycle.verdict.sha256", digest), ("lifecycle.verdict.passed", str(verdict["passed"]).lower()),
                               ("lifecycle.verdict.run_id", run_id)):
                client.set_model_version_tag(args.model, candidate_version, key, value)
    staged = None
    if verdict["passed"] and args.stage:
        staged = lifecycle.stage(
            client, args.model, candidate_version, names, reason=args.reason or "passed the promotion gate",
            actor=args.actor, evidence={"verdict": digest},
        )
    if not verdict["passed"]:
        cli.report_error("Promotion gate failed", "; ".join(verdict["failures"]), EXIT_REFUSED)
    return {
        "ok": True,
        "exit_code": EXIT_OK if verdict["passed"] else EXIT_REFUSED,
        "passed": verdict["passed"],
        "model": args.model,
        "candidate": candidate_version,
        "baseline": baseline_version,
        "failures": verdict["failures"],
        "verdict_path": str(Path(args.output).resolve()),
        "report_path": str(Path(args.report).resolve()),
        "verdict_sha256": digest,
        "evaluation_run_id": run_id,
        "staged": bool(staged and staged["changed"]),
    }


def render(result: dict[str, Any]) -> None:
    mark = "✔ passes" if result["passed"] else "✘ fails"
    against = f"champion v{result['baseline']}" if result["baseline"] else "floors only (no champion)"
    print(f"{mark}: {result['model']} v{result['candidate']} vs {against}")
    for reason in result["failures"]:
        print(f"  - {reason}")
    print(f"  verdict: {result['verdict_path']}\n  report:  {result['report_path']}")
    if result["staged"]:
        print("  staged as challenger")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=render)

