"""Model checks before the gate: signature, hold-out conformance, finite in-range predictions,
batch latency p95 and model size within budget, and the repository's own tests run against the model.

The repository's tests get the model's URI in $MODEL_URI (command from the policy's tests.command,
default `pytest`, or --tests-command). Exit 0 all checks pass, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/check_model.py --model-uri models:/churn/7 --policy model-policy.yml
  python scripts/check_model.py --model-uri models:/churn/7 --tests-command "pytest tests/model -q"
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("check_model.py", __doc__.splitlines()[0], EXAMPLES)
    parser.add_argument("--model-uri", required=True, help="The model to check, e.g. models:/churn/7.")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (default: model-policy.yml).")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--tests-command", help="Command for the repository's tests (default: the policy's tests.command).")
    parser.add_argument("--tests-dir", default=".", help="Where the tests command runs (default: current directory).")
    parser.add_argument("--no-tests", action="store_true", help="Run only the model checks, not the repository's tests.")
    parser.add_argument("--output", default="checks.json", help="Where the JSON report is written.")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.gate import CheckRequest, check

    return check(CheckRequest(args.model_uri, policy=args.policy, holdout=args.holdout,
                              tests_command=args.tests_command, tests_dir=args.tests_dir, run_tests=not args.no_tests,
                              output=args.output, tracking_uri=args.tracking_uri))


def render(result: dict[str, Any]) -> None:
    for check in result["checks"]:
        print(f"{'✔' if check['passed'] else '✘'} {check['name']}: {check['detail']}")


main = cli.command(build_parser, call, render)
