"""Everything the toolkit asks of GitHub, through PyGithub, honouring GITHUB_API_URL (GitHub Enterprise).

Kept in one module so the calls are few and named: the run's environment approvals (the human
gate), an environment's protection rules, sticky pull-request comments, approval-request issues,
and environment set-up. Every call has a timeout and bounded retries; failures become exit 3.
(The Slack-compatible webhook is not GitHub's: it is ``adapters/channels/webhook.py``.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from model_lifecycle import settings
from model_lifecycle.errors import BadInput, ServiceError

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})  # PATCH: the same edit again

MARKER = "<!-- model-lifecycle:{model} -->"


def api_url() -> str:
    return settings.GITHUB_API_URL.get() or "https://api.github.com"


def connect(token: str | None = None) -> Any:
    """A PyGithub client for $GITHUB_API_URL with a token from the argument or $GITHUB_TOKEN."""
    from github import Auth, Github
    from urllib3.util.retry import Retry

    token = token or settings.GITHUB_TOKEN.get()
    if not token:
        raise BadInput("no GitHub token", hint="pass github-token (GITHUB_TOKEN) to the step")
    # Never retry a POST: a 5xx after the write would create a second comment, issue or dispatch.
    retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=IDEMPOTENT)
    return Github(base_url=api_url(), auth=Auth.Token(token), timeout=15, retry=retry, per_page=100)


def _service(exc: Exception, what: str) -> ServiceError:
    status = getattr(exc, "status", None)
    detail = f" (HTTP {status})" if status else f": {type(exc).__name__}"  # no URLs or tokens in messages
    return ServiceError(f"GitHub API at {api_url()} failed to {what}{detail} after bounded retries")


def get_repo(gh: Any, full_name: str) -> Any:
    from github import GithubException
    from requests import RequestException

    if full_name.count("/") != 1 or not all(full_name.split("/")):
        raise BadInput(f"repository {full_name!r} must look like OWNER/REPO")
    try:
        return gh.get_repo(full_name)
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            raise BadInput(f"repository {full_name!r} not found (or the token cannot see it)") from exc
        raise _service(exc, f"read repository {full_name}") from exc


@dataclass
class Approval:
    user: str
    comment: str
    time: str
    environments: list[str]


def run_approvals(gh: Any, repo: str, run_id: str, environment: str) -> list[Approval]:
    """Approvals given on this workflow run for ``environment`` (GET .../actions/runs/{id}/approvals)."""
    from github import GithubException
    from requests import RequestException

    try:
        _, data = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}/actions/runs/{run_id}/approvals")
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"read the approvals of run {run_id}") from exc
    approvals = []
    for item in data or []:
        names = [env.get("name") for env in item.get("environments", [])]
        if item.get("state") == "approved" and environment in names:
            approvals.append(Approval(
                user=(item.get("user") or {}).get("login", "unknown"), comment=item.get("comment") or "",
                time=item.get("created_at") or (item.get("user") or {}).get("updated_at") or "", environments=names,
            ))
    return approvals


def environment_protected(gh: Any, repo: str, environment: str) -> bool:
    """Whether the environment has required reviewers (the human gate)."""
    from github import GithubException
    from requests import RequestException

    try:
        env = gh.get_repo(repo).get_environment(environment)
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise _service(exc, f"read environment {environment}") from exc
    return any(rule.type == "required_reviewers" for rule in (env.protection_rules or []))


# The login GitHub shows for writes made with an Actions GITHUB_TOKEN. Installation tokens (that one,
# and any GitHub App's) get 403 from GET /user, so the author of our own comments cannot be asked.
ACTIONS_BOT = "github-actions[bot]"
APPROVAL_LABEL = "model-approval"
RECENT_ISSUES = 300  # open issues searched when the label was dropped (no push access): newest first


def authenticated_login(gh: Any) -> str:
    """Who the token writes as: GET /user, or github-actions[bot] for an installation token (403)."""
    from github import GithubException
    from requests import RequestException

    try:
        return gh.get_user().login
    except GithubException as exc:
        if exc.status == 403:
            return ACTIONS_BOT
        raise _service(exc, "read the authenticated user") from exc
    except RequestException as exc:
        raise _service(exc, "read the authenticated user") from exc


def upsert_comment(gh: Any, repo: str, number: int, model: str, body: str, *,
                   author: str | None = None) -> dict[str, Any]:
    """One sticky comment per model on a pull request: updated when it exists, created otherwise.

    Ours is the comment with the model's marker written by ``author`` (default: the token's own
    login); a comment by someone else that quotes the marker is never edited."""
    from github import GithubException
    from requests import RequestException

    marker = MARKER.format(model=model)
    text = f"{marker}\n{body}"
    try:
        author = author or authenticated_login(gh)
        issue = gh.get_repo(repo).get_issue(number)
        for comment in issue.get_comments():
            if marker in (comment.body or "") and _login(comment) == author:
                comment.edit(text)
                return {"action": "updated", "id": comment.id}
        created = issue.create_comment(text)
        return {"action": "created", "id": created.id}
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"comment on #{number}") from exc


def request_approval_issue(gh: Any, repo: str, model: str, title: str, body: str, *,
                           author: str | None = None) -> dict[str, Any]:
    """An issue asking the team to review a staged version; an open one of ours gets a comment instead.

    Ours is an open issue (not a pull request) with the model's marker, opened by ``author``
    (default: the token's own login). It is looked up by its label first and then among the newest
    open issues, because GitHub silently drops labels when the token lacks push access."""
    from github import GithubException
    from requests import RequestException

    marker = MARKER.format(model=model)
    try:
        author = author or authenticated_login(gh)
        target = gh.get_repo(repo)
        candidates = itertools.chain(
            target.get_issues(state="open", labels=[APPROVAL_LABEL]),
            itertools.islice(target.get_issues(state="open", sort="created", direction="desc"), RECENT_ISSUES),
        )
        for issue in candidates:
            if issue.pull_request is None and marker in (issue.body or "") and _login(issue) == author:
                comment = issue.create_comment(body)
                return {"action": "commented", "issue": issue.number, "id": comment.id}
        issue = target.create_issue(title=title, body=f"{marker}\n{body}", labels=[APPROVAL_LABEL])
        labelled = any(label.name == APPROVAL_LABEL for label in issue.labels or [])
        return {"action": "created", "issue": issue.number, "labelled": labelled}
    except (GithubException, RequestException) as exc:
        raise _service(exc, "open the approval request issue") from exc


def _login(item: Any) -> str | None:
    user = getattr(item, "user", None)
    return getattr(user, "login", None) if user is not None else None


def setup_environment(
    gh: Any, repo: str, name: str, reviewers: list[str], *, prevent_self_review: bool, protected_branches: bool
) -> dict[str, Any]:
    """Create or update an environment with required reviewers; returns what changed."""
    from github import GithubException
    from requests import RequestException
    from github.EnvironmentDeploymentBranchPolicy import EnvironmentDeploymentBranchPolicyParams
    from github.EnvironmentProtectionRuleReviewer import ReviewerParams

    target = get_repo(gh, repo)
    params = []
    for login in reviewers:
        try:
            if login.count("/") == 1:  # org/team-slug
                org, slug = login.split("/")
                params.append(ReviewerParams("Team", gh.get_organization(org).get_team_by_slug(slug).id))
            else:
                params.append(ReviewerParams("User", gh.get_user(login).id))
        except (GithubException, RequestException) as exc:
            if getattr(exc, "status", None) == 404:
                raise BadInput(f"reviewer {login!r} not found on GitHub") from exc
            raise _service(exc, f"look up reviewer {login}") from exc
    before = _environment_state(target, name)
    policy = EnvironmentDeploymentBranchPolicyParams(protected_branches=True) if protected_branches else None
    try:
        target.create_environment(name, reviewers=params, prevent_self_review=prevent_self_review,
                                  deployment_branch_policy=policy)
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"create or update environment {name}") from exc
    after = {"reviewers": sorted(reviewers), "prevent_self_review": prevent_self_review,
             "protected_branches_only": protected_branches}
    changes = {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}
    return {"environment": name, "existed": before.get("exists", False), "changes": changes}


def _environment_state(repo: Any, name: str) -> dict[str, Any]:
    from github import GithubException
    from requests import RequestException

    try:
        env = repo.get_environment(name)
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            return {"exists": False}
        raise _service(exc, f"read environment {name}") from exc
    state: dict[str, Any] = {"exists": True, "reviewers": [], "prevent_self_review": False}
    for rule in env.protection_rules or []:
        if rule.type == "required_reviewers":
            state["prevent_self_review"] = bool(rule.prevent_self_review)
            state["reviewers"] = sorted(_reviewer_name(r.reviewer) for r in rule.reviewers or [])
    policy = env.deployment_branch_policy
    state["protected_branches_only"] = bool(policy and policy.protected_branches)
    return state


def _reviewer_name(reviewer: Any) -> str:
    """A user's login, or org/slug for a team, as setup_environments takes them."""
    login = getattr(reviewer, "login", None)
    if login:
        return login
    organization = getattr(reviewer, "organization", None)
    return f"{organization.login if organization else ''}/{getattr(reviewer, 'slug', '')}"
