"""Staging deployment check: serve the version, then serving parity, a bounded load, malformed requests.

Starts the version with the toolkit's `serve` app on a free loopback port (or calls --endpoint,
a staging URL), sends the hold-out through HTTP and compares with in-process predictions, runs the
policy's load and latency budget, and checks that client mistakes get 400. Exit 0 pass, 1 fail.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/stage_check.py --model churn --version 7 --policy model-policy.yml
  python scripts/stage_check.py --model churn --version 7 --endpoint https://staging.internal/churn
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("stage_check.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--version", required=True, help="The version to check (normally @challenger).")
    parser.add_argument("--policy", default="model-policy.yml", help="Policy file (its staging: section).")
    parser.add_argument("--holdout", metavar="PATH", help="Override the policy's holdout.path.")
    parser.add_argument("--endpoint", metavar="URL", help="Check this staging URL instead of a local serve.")
    parser.add_argument("--output", default="stage-check.json", help="Where the JSON result is written.")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.stage_check import StageCheckRequest, stage_check

    return stage_check(StageCheckRequest(args.model, args.version, args.policy, args.holdout, args.endpoint,
                                         args.output, args.tracking_uri))


def render(result: dict[str, Any]) -> None:
    print(f"{'✔ passes' if result['passed'] else '✘ fails'}: staging check of {result['model']} v{result['version']}"
          f" at {result['endpoint']}")
    for check in result["checks"]:
        print(f"  {'✔' if check['passed'] else '✘'} {check['name']}: {check['detail']}")


main = cli.command(build_parser, call, render)
