"""Release a merged pull request's candidate: send the registration workflow its newest candidate version.

A version registered by a pull request's run is tagged lifecycle.pull_request=N: a candidate under
review, gated and reported on the pull request, never staged, not announced by the relay. When the
pull request merges, this sends the same model-registered repository_dispatch the relay sends, for
the newest non-archived candidate of pull request N, and records the release (a version tag and an
audit event), so a re-run of the release sends nothing. Exit 0 sent (or already sent), 1 no
candidate, 2 bad input, 3 GitHub or MLflow failed.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/release_candidate.py --model churn --pull-request 42 --repo acme/churn-model
  python scripts/release_candidate.py --model churn --pull-request 42 --dry-run
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("release_candidate.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--pull-request", required=True, metavar="N", help="The merged pull request.")
    parser.add_argument("--repo", metavar="OWNER/REPO", help="Repository to dispatch to (default: $GITHUB_REPOSITORY).")
    parser.add_argument("--head-sha", metavar="SHA",
                        help="The merged head commit: release only a candidate built from it "
                             "(tagged lifecycle.pull_request.head_sha at registration).")
    parser.add_argument("--dry-run", action="store_true", help="Name the candidate; send nothing.")
    parser.add_argument("--again", action="store_true",
                        help="Send a candidate that was already released once more (a second registration run).")
    parser.add_argument("--reason", help="Why, for the audit record.")
    return parser


def call(args: Any) -> Any:
    from model_lifecycle.api.release import ReleaseRequest, release_candidate

    return release_candidate(ReleaseRequest(args.model, args.pull_request, repo=args.repo, head_sha=args.head_sha,
                                            dry_run=args.dry_run, again=args.again, reason=args.reason,
                                            tracking_uri=args.tracking_uri))


def render(result: dict[str, Any]) -> None:
    print(("✔ " if result["dispatched"] else "") + result["message"])


main = cli.command(build_parser, call, render)
