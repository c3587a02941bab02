"""Everything the toolkit asks of GitHub, through PyGithub, honouring GITHUB_API_URL (GitHub Enterprise).

Kept in one module so the calls are few and named: the run's environment approvals (the human
gate) and, from the run's deployment to the environment, when the approved job was released; an
environment's protection rules, sticky pull-request comments, approval-request issues, and
environment set-up (raw REST calls where PyGithub would send fields not meant, such as wait_timer: 0,
or fetch GitHub's legacy /teams/{id} endpoint). Every call has a timeout and bounded retries;
failures become exit 3.
(The Slack-compatible webhook is not GitHub's: it is ``adapters/channels/webhook.py``.)
"""

from __future__ import annotations

import itertools
import re
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
    environments: list[str]


def run_approvals(gh: Any, repo: str, run_id: str, environment: str) -> list[Approval]:
    """Approvals given on this workflow run for ``environment`` (GET .../actions/runs/{id}/approvals).

    GitHub's answer has no time and no promised order (and no paging): the approvals come back
    sorted by login, so nothing depends on the order GitHub happened to use. Their time is
    ``approval_time``'s business."""
    from github import GithubException
    from requests import RequestException

    try:
        _, data = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}/actions/runs/{run_id}/approvals")
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"read the approvals of run {run_id}") from exc
    approvals = []
    for item in data or []:
        names = [env.get("name") for env in item.get("environments") or []]
        if item.get("state") == "approved" and environment in names:
            approvals.append(Approval(user=(item.get("user") or {}).get("login") or "unknown",
                                      comment=item.get("comment") or "", environments=names))
    return sorted(approvals, key=lambda a: (a.user, a.comment))


RELEASED_STATES = ("queued", "in_progress")  # the job left its wait: the reviewers had approved


def approval_time(gh: Any, repo: str, run_id: str, environment: str, sha: str | None) -> str | None:
    """When GitHub released this run's job into ``environment`` after the approval, or None if unknown.

    The approvals answer carries no time. What GitHub does record is the deployment Actions creates
    for a job that targets an environment, with its statuses: the first ``queued`` or
    ``in_progress`` status of the deployment that belongs to this run (its statuses link to
    ``/actions/runs/{run_id}``) is when the approved job was let go. Deployments are filtered to
    the run's commit (``sha``) and the environment. Anything missing or failing (no
    ``deployments: read`` permission, no such deployment, GitHub down) gives None: the time is a
    record, never a reason to refuse an approved promotion."""
    from github import GithubException
    from requests import RequestException

    if not sha:
        return None
    run_link = re.compile(rf"/actions/runs/{re.escape(str(run_id))}(?:[/?#]|$)")
    try:
        _, deployments = gh.requester.requestJsonAndCheck(
            "GET", f"/repos/{repo}/deployments", parameters={"environment": environment, "sha": sha, "per_page": 100})
        for deployment in deployments or []:  # newest first
            _, statuses = gh.requester.requestJsonAndCheck(
                "GET", f"/repos/{repo}/deployments/{int(deployment['id'])}/statuses", parameters={"per_page": 100})
            statuses = statuses or []
            if not any(run_link.search(f"{s.get('log_url') or ''} {s.get('target_url') or ''}") for s in statuses):
                continue
            released = sorted(s["created_at"] for s in statuses
                              if s.get("state") in RELEASED_STATES and s.get("created_at"))
            return released[0] if released else None
    except (GithubException, RequestException, KeyError, TypeError, ValueError):
        return None
    return None


def environment_protected(gh: Any, repo: str, environment: str) -> bool:
    """Whether the environment has required reviewers (the human gate)."""
    from github import GithubException
    from requests import RequestException

    try:
        _, env = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}/environments/{_quote(environment)}")
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise _service(exc, f"read environment {environment}") from exc
    return any(rule.get("type") == "required_reviewers" for rule in (env or {}).get("protection_rules") or [])


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


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


def rate_limited(status: int, headers: Any, message: Any = "") -> bool:
    """GitHub's primary rate limit (403/429 with x-ratelimit-remaining: 0) or secondary one (403/429
    with Retry-After, or its message saying so): GitHub's fault, to wait for, not the token's."""
    if status not in (403, 429):
        return False
    lower = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    return (str(lower.get("x-ratelimit-remaining", "")) == "0" or bool(lower.get("retry-after"))
            or "rate limit" in str(message).lower())


def repository_dispatch(gh: Any, repo: str, event_type: str, payload: dict[str, Any]) -> None:
    """POST /repos/{repo}/dispatches: starts the repository's ``repository_dispatch`` workflows on
    the default branch (a GITHUB_TOKEN may send it: unlike other events, it starts runs)."""
    from github import GithubException
    from requests import RequestException

    target = get_repo(gh, repo)
    try:
        # Repository.create_repository_dispatch answers only True or False; the status says whose fault
        status, headers, body = target._requester.requestJson(
            "POST", f"{target.url}/dispatches", input={"event_type": event_type, "client_payload": payload})
    except (GithubException, RequestException) as exc:
        raise _service(exc, f"send repository_dispatch to {repo}") from exc
    if status == 204:
        return
    if status in (401, 403, 404) and not rate_limited(status, headers, body):
        raise BadInput(f"the token cannot send repository_dispatch to {repo} (HTTP {status})",
                       hint="the job needs permissions: contents: write")
    raise ServiceError(f"GitHub API at {api_url()} failed to send repository_dispatch to {repo} (HTTP {status})")


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


MAX_REVIEWERS = 6  # GitHub's limit on an environment's required reviewers


@dataclass(frozen=True)
class Reviewer:
    kind: str  # User | Team, as GitHub's API names them
    id: int
    name: str  # the login, or org/slug for a team, as setup_environments takes them


def resolve_reviewer(gh: Any, name: str) -> Reviewer:
    """A login (GET /users/{login}) or org/team-slug (GET /orgs/{org}/teams/{slug}) to GitHub's numeric id.

    Only these two endpoints: never PyGithub's Team.organization, which fetches the legacy
    /teams/{id} endpoint GitHub is closing down."""
    from github import GithubException
    from requests import RequestException

    kind, path = ("Team", "/orgs/{}/teams/{}".format(*map(_quote, name.split("/")))) if name.count("/") == 1 \
        else ("User", f"/users/{_quote(name)}")
    try:
        _, data = gh.requester.requestJsonAndCheck("GET", path)
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            raise BadInput(f"reviewer {name!r} not found on GitHub") from exc
        raise _service(exc, f"look up reviewer {name}") from exc
    return Reviewer(kind, int(data["id"]), name)


def setup_environment(
    gh: Any, repo: str, name: str, reviewers: list[str], *, prevent_self_review: bool, protected_branches: bool
) -> dict[str, Any]:
    """Create or update an environment with required reviewers; returns what changed.

    Reviewers are compared as GitHub identifies them, by (type, id). The PUT is sent by hand with
    only the fields meant (PyGithub's create_environment always sends wait_timer: 0 and would reset
    a timer set by hand); a wait timer already there is sent back as it is."""
    from github import GithubException
    from requests import RequestException

    if len(reviewers) > MAX_REVIEWERS:
        raise BadInput(f"{len(reviewers)} reviewers given; GitHub allows at most {MAX_REVIEWERS} per environment",
                       hint="name a team (org/team) instead of its members")
    get_repo(gh, repo)
    wanted = _unique(resolve_reviewer(gh, login) for login in reviewers)
    before = _environment_state(gh, repo, name)
    body: dict[str, Any] = {
        "reviewers": [{"type": r.kind, "id": r.id} for r in wanted],
        "prevent_self_review": prevent_self_review,
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False}
        if protected_branches else None,
    }
    if before.get("wait_timer"):
        body["wait_timer"] = before["wait_timer"]
    try:
        gh.requester.requestJsonAndCheck("PUT", f"/repos/{repo}/environments/{_quote(name)}", input=body)
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 422:
            raise BadInput(f"GitHub refused the settings of environment {name!r}: {_message(exc)}") from exc
        raise _service(exc, f"create or update environment {name}") from exc
    changes: dict[str, Any] = {}
    if not before["exists"] or before["reviewers"] != {(r.kind, r.id) for r in wanted}:
        names = {(r.kind, r.id): r.name for r in wanted}
        changes["reviewers"] = {
            "from": sorted(names.get(key, label) for key, label in before["reviewer_labels"].items())
            if before["exists"] else None,
            "to": sorted(r.name for r in wanted)}
    for key, value in (("prevent_self_review", prevent_self_review), ("protected_branches_only", protected_branches)):
        if before.get(key) != value:
            changes[key] = {"from": before.get(key), "to": value}
    return {"environment": name, "existed": before["exists"], "changes": changes}


def _unique(reviewers: Any) -> list[Reviewer]:
    seen: dict[tuple[str, int], Reviewer] = {}
    for reviewer in reviewers:
        seen.setdefault((reviewer.kind, reviewer.id), reviewer)
    return list(seen.values())


def _message(exc: Exception) -> str:
    data = getattr(exc, "data", None) or {}
    errors = "; ".join(str(e.get("message", e)) for e in data.get("errors") or [] if isinstance(e, dict))
    return errors or str(data.get("message") or "validation failed")


def _environment_state(gh: Any, repo: str, name: str) -> dict[str, Any]:
    """The environment as GET /repos/{repo}/environments/{name} answers it, read from the JSON itself
    (no PyGithub objects that would fetch more: a team reviewer's organization is not in it)."""
    from github import GithubException
    from requests import RequestException

    try:
        _, env = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}/environments/{_quote(name)}")
    except (GithubException, RequestException) as exc:
        if getattr(exc, "status", None) == 404:
            return {"exists": False, "reviewers": set(), "reviewer_labels": {}}
        raise _service(exc, f"read environment {name}") from exc
    state: dict[str, Any] = {"exists": True, "reviewers": set(), "reviewer_labels": {}, "prevent_self_review": False,
                             "wait_timer": 0}
    for rule in env.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            state["prevent_self_review"] = bool(rule.get("prevent_self_review"))
            for item in rule.get("reviewers") or []:
                reviewer = item.get("reviewer") or {}
                key = (item.get("type"), reviewer.get("id"))
                state["reviewers"].add(key)
                state["reviewer_labels"][key] = _reviewer_label(item.get("type"), reviewer)
        elif rule.get("type") == "wait_timer":
            state["wait_timer"] = int(rule.get("wait_timer") or 0)
    policy = env.get("deployment_branch_policy")
    state["protected_branches_only"] = bool(policy and policy.get("protected_branches"))
    return state


def _reviewer_label(kind: str | None, reviewer: dict[str, Any]) -> str:
    """A user's login; a team's org/slug, the org read from its html_url (.../orgs/ORG/teams/SLUG)."""
    if kind == "User":
        return str(reviewer.get("login") or reviewer.get("id"))
    found = re.search(r"/orgs/([^/]+)/teams/", reviewer.get("html_url") or "")
    slug = reviewer.get("slug") or str(reviewer.get("id"))
    return f"{found.group(1)}/{slug}" if found else slug
