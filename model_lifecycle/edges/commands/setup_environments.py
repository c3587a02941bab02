"""Create or update the `staging` and `production` environments: required reviewers (the human
gate), prevent self-review, and deployment from protected branches only. Idempotent: prints what
it changed, and nothing when all is already as asked. Reviewers are compared by GitHub's (type, id);
at most 6 (GitHub's limit, refused before any call); a wait timer set by hand is kept.

Needs a token with repository administration rights (GITHUB_TOKEN or --token-env NAME).
"""

from __future__ import annotations

import os
from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/setup_environments.py --repo acme/churn-model --reviewers alice,acme/ml-leads
  python scripts/setup_environments.py --repo acme/churn-model --reviewers alice --environments production
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("setup_environments.py", __doc__.splitlines()[0], EXAMPLES, shared=False)
    parser.add_argument("--json", action="store_true", help="Print one machine-readable JSON document on stdout.")
    parser.add_argument("--repo", required=True, help="OWNER/REPO.")
    parser.add_argument("--reviewers", required=True, help="Comma-separated GitHub logins or org/team slugs, at most 6.")
    parser.add_argument("--environments", default="staging,production", help="Which environments (default: staging,production).")
    parser.add_argument("--allow-self-review", action="store_true", help="Let whoever triggered the run approve it.")
    parser.add_argument("--any-branch", action="store_true", help="Allow deployments from any branch, not only protected ones.")
    parser.add_argument("--token-env", default="GITHUB_TOKEN", help="Environment variable holding the token (default: GITHUB_TOKEN).")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.environments import EnvironmentsRequest, setup_environments

    return setup_environments(EnvironmentsRequest(
        args.repo, args.reviewers.split(","), [e.strip() for e in args.environments.split(",") if e.strip()],
        prevent_self_review=not args.allow_self_review, protected_branches_only=not args.any_branch,
        token=os.environ.get(args.token_env),
    ))


def render(result: dict[str, Any]) -> None:
    for env in result["environments"]:
        if not env["changes"]:
            print(f"= {env['environment']}: already as asked")
            continue
        print(f"✔ {env['environment']}: {'updated' if env['existed'] else 'created'}")
        for key, change in env["changes"].items():
            print(f"    {key}: {change['from']} -> {change['to']}")


main = cli.command(build_parser, call, render)
