"""Everything the toolkit asks of GitHub, through PyGithub, honouring GITHUB_API_URL (GitHub Enterprise).

Kept in one module so the calls are few and named: the run's environment approvals (the human
gate), an environment's protection rules, sticky pull-request comments, approval-request issues,
and environment set-up. Every call has a timeout and bounded retries; failures become exit 3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from model_lifecycle.errors import BadInput, ServiceError

DEFAULT_API_URL = "https://api.github.com"
MARKER = "<!-- model-lifecycle:{model} -->"


def api_url() -> str:
    return os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL


def connect(token: str | None = None) -> Any:
    """A PyGithub client for $GITHUB_API_URL with a token from the argument or $GITHUB_TOKEN."""
    from github import Auth, Github
    from urllib3.util.retry import Retry

    token = token or os.environ.get("GITHUB_TOKEN")
    if not token:
        raise BadInput("no GitHub token", hint="pass github-token (GITHUB_TOKEN) to the step")
    retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=None)
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


def upsert_comment(gh: Any, repo: str, number: int, model: str, body: str) -> dict[str, Any]:
    """One sticky comment per model on a pull request: updated when it exists, created otherwise."""
    from github import GithubException
    from requests import RequestException

    marker = MARKER.format(model=model)
    text = f"{marker}\n{body}"
    try:
        issue = gh.get_repo(repo).get_issue(number)
        for comment in issue.get_comments():
            if marker in (comment.body or ""):
                comment.edit(text)
                return {"action": "updated", "id": comment.id}
        created = issue.create_comment(text)
        return {"action": "created", "id": created.id}
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"comment on #{number}") from exc


def request_approval_issue(gh: Any, repo: str, model: str, title: str, body: str) -> dict[str, Any]:
    """An issue asking the team to review a staged version; reused (commented) if one is open."""
    from github import GithubException
    from requests import RequestException

    marker = MARKER.format(model=model)
    try:
        target = gh.get_repo(repo)
        for issue in target.get_issues(state="open", labels=["model-approval"]):
            if marker in (issue.body or ""):
                comment = issue.create_comment(body)
                return {"action": "commented", "issue": issue.number, "id": comment.id}
        issue = target.create_issue(title=title, body=f"{marker}\n{body}", labels=["model-approval"])
        return {"action": "created", "issue": issue.number}
    except (GithubException, RequestException) as exc:
        raise _service(exc, "open the approval request issue") from exc


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


def post_webhook(url: str, text: str) -> None:
    """A Slack-compatible incoming webhook ({"text": ...}; Mattermost and Teams workflows accept it)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None)
    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(max_retries=retry))
    try:
        response = session.post(url, json={"text": text}, timeout=15)
    except requests.RequestException as exc:
        raise ServiceError(f"the notification webhook failed: {type(exc).__name__}") from exc  # never print the URL
    if response.status_code >= 300:
        raise ServiceError(f"the notification webhook answered HTTP {response.status_code}")
