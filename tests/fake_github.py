"""A local HTTP server that answers like GitHub's REST API for the calls the toolkit makes.

GitHub is the one outside service no machine here reaches, so tests point GITHUB_API_URL at this.
It keeps state (issues and pull requests, comments, environments, teams, run approvals,
deployments and their statuses), records every request, and also accepts Slack-style webhook posts
on /hooks/<name>. Run it standalone for act:
``python tests/fake_github.py --port N --state state.json --log requests.jsonl``.

It answers with the shapes and rules of GitHub's published REST description, including the parts
that are easy to get wrong (see /work/shared/reference/github-facts.md):
* ``GET .../actions/runs/{id}/approvals`` has no ``created_at`` and no paging, and its order is not
  specified (this stand-in answers newest first, so code that takes "the last one" as the latest
  is caught);
* an approval's time can only come from the environment's deployment for the run and its statuses
  (``GET .../deployments?environment=&sha=&ref=``, ``GET .../deployments/{id}/statuses``);
* ``PUT .../environments/{name}`` takes at most 6 reviewers ``{type, id}``; a field left out keeps
  its value; team objects carry no ``organization`` (the legacy ``/teams/{id}`` endpoint that
  PyGithub would fetch for it is recorded like any request, so tests can assert it is never used);
* issue and comment bodies over 65,536 characters answer 422 "Body is too long";
* labels are silently dropped when the token has no push access (``read_only_tokens``);
* ``GET .../issues`` also lists pull requests, filters by state and labels, and pages with ``Link``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlparse

BODY_LIMIT = 65_536  # characters, issue and comment bodies
MAX_REVIEWERS = 6
DOCS = "https://docs.github.com/rest"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validation_failed(resource: str, field: str, message: str, docs: str) -> tuple:
    return 422, {"message": "Validation Failed", "errors": [
        {"resource": resource, "code": "custom", "field": field, "message": message}],
        "documentation_url": docs, "status": "422"}


class FakeGitHub:
    def __init__(self, port: int = 0, log_path: str | None = None) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.issues: dict[str, dict[int, dict[str, Any]]] = {}
        self.environments: dict[str, dict[str, dict[str, Any]]] = {}  # repo -> name -> internal state
        self.approvals: dict[str, list[dict[str, Any]]] = {}
        self.deployments: dict[str, list[dict[str, Any]]] = {}  # repo -> deployments, oldest first
        self.statuses: dict[int, list[dict[str, Any]]] = {}  # deployment id -> statuses, oldest first
        self.users = {"alice": 101, "bob": 102, "carol": 103, "dave": 104, "erin": 105, "frank": 106, "grace": 107}
        self.teams = {"acme/ml-leads": 201, "acme/platform": 202}  # org/slug -> id
        self.orgs = {"acme": 301}
        self.read_only_tokens: set[str] = set()  # tokens without push access: issue labels are dropped
        self.webhooks: list[dict[str, Any]] = []
        self.dispatches: list[dict[str, Any]] = []
        # Scripted failures of POST /repos/{repo}/dispatches: "502", "rate-limit" (403 with
        # x-ratelimit-remaining 0 and a reset 1 s ahead) or a float p for random 5xx with probability p.
        self.dispatch_failures: list[str] = []
        self.dispatch_error_rate = 0.0
        # Called with (method, path) before a request is answered (outside the lock): a test uses it
        # to make something happen "while" the toolkit is between two calls.
        self.on_request: Callable[[str, str], None] | None = None
        self.next_id = 1000
        self.token = ""  # of the request being answered
        self.log_path = log_path
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeGitHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- state helpers for tests --------------------------------------------------------------
    def protect(self, repo: str, env: str, reviewers: list[str], *, wait_timer: int = 0) -> None:
        """An environment with required reviewers (logins or org/slug), no self-review, protected branches."""
        pairs = [("Team", self.teams[r]) if "/" in r else ("User", self.users[r]) for r in reviewers]
        self.environments.setdefault(repo, {})[env] = self._env_state(
            pairs, prevent_self_review=True, wait_timer=wait_timer,
            branch_policy={"protected_branches": True, "custom_branch_policies": False})

    def approve(self, repo: str, run_id: str, env: str, user: str, comment: str, state: str = "approved") -> None:
        """A review of the run's pending deployment, as GET .../approvals lists it (no time)."""
        self.approvals.setdefault(f"{repo}#{run_id}", []).append({
            "state": state, "comment": comment,
            "environments": [self._env_summary(repo, env)],
            "user": self._simple_user(user),
        })

    def deployment(self, repo: str, env: str, *, sha: str, ref: str, run_id: str, created_at: str,
                   statuses: list[tuple[str, str]]) -> dict[str, Any]:
        """The deployment GitHub Actions creates when a job of run ``run_id`` targets ``env``, with
        its statuses ``(state, created_at)`` (states as the API documents them, e.g. queued, in_progress)."""
        deployment_id = self._new_id()
        api = f"{self.url}/repos/{repo}"
        deployment = {
            "url": f"{api}/deployments/{deployment_id}", "id": deployment_id, "node_id": f"DE_{deployment_id}",
            "sha": sha, "ref": ref, "task": "deploy", "payload": {}, "original_environment": env,
            "environment": env, "description": None, "creator": self._simple_user("github-actions[bot]", bot=True),
            "created_at": created_at, "updated_at": statuses[-1][1] if statuses else created_at,
            "statuses_url": f"{api}/deployments/{deployment_id}/statuses", "repository_url": api,
            "transient_environment": False, "production_environment": False, "performed_via_github_app": None,
        }
        self.deployments.setdefault(repo, []).append(deployment)
        job_url = f"https://github.example/{repo}/actions/runs/{run_id}/job/{deployment_id + 1}"
        for state, at in statuses:
            status_id = self._new_id()
            self.statuses.setdefault(deployment_id, []).append({
                "url": f"{api}/deployments/{deployment_id}/statuses/{status_id}", "id": status_id,
                "node_id": f"DES_{status_id}", "state": state, "creator": deployment["creator"], "description": "",
                "environment": env, "target_url": job_url, "log_url": job_url, "environment_url": "",
                "created_at": at, "updated_at": at, "deployment_url": deployment["url"], "repository_url": api,
                "performed_via_github_app": None,
            })
        return deployment

    def pull_request(self, repo: str, number: int) -> None:
        issue = self._issue(repo, number, f"PR {number}", "", [])
        issue["pull_request"] = {"url": f"{self.url}/repos/{repo}/pulls/{number}",
                                 "html_url": f"https://github.example/{repo}/pull/{number}"}
        self.issues.setdefault(repo, {})[number] = issue

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # --- JSON shapes --------------------------------------------------------------------------
    def _simple_user(self, login: str, bot: bool = False) -> dict[str, Any]:
        user_id = self.users.get(login, 41898282 if bot else 1)
        return {"login": login, "id": user_id, "node_id": f"U_{user_id}", "url": f"{self.url}/users/{login}",
                "html_url": f"https://github.example/{login}", "type": "Bot" if bot else "User", "site_admin": False}

    def _team(self, slug_path: str) -> dict[str, Any]:
        """A team as GitHub shows it (GET /orgs/{org}/teams/{slug}, environment reviewers): no ``organization``."""
        org, slug = slug_path.split("/")
        team_id = self.teams[slug_path]
        return {"id": team_id, "node_id": f"T_{team_id}", "url": f"{self.url}/teams/{team_id}",
                "html_url": f"https://github.example/orgs/{org}/teams/{slug}", "name": slug, "slug": slug,
                "description": None, "privacy": "closed", "notification_setting": "notifications_enabled",
                "permission": "pull", "members_url": f"{self.url}/teams/{team_id}/members{{/member}}",
                "repositories_url": f"{self.url}/teams/{team_id}/repos", "parent": None}

    def _issue(self, repo: str, number: int, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return {"number": number, "title": title, "body": body, "state": "open", "comments": [],
                "url": f"{self.url}/repos/{repo}/issues/{number}", "labels": [{"name": n} for n in labels],
                "html_url": f"https://github.example/{repo}/issues/{number}", "user": {"login": "bot"},
                "created_at": _now()}

    def _author(self) -> str:
        """Who a write is by: the token's user; Actions' GITHUB_TOKEN (ghs_...) writes as github-actions[bot]."""
        return "github-actions[bot]" if self.token.startswith("ghs_") else "bot"

    @staticmethod
    def _env_state(reviewers: list[tuple[str, int]], *, prevent_self_review: bool, wait_timer: int,
                   branch_policy: dict[str, bool] | None) -> dict[str, Any]:
        return {"reviewers": reviewers, "prevent_self_review": prevent_self_review, "wait_timer": wait_timer,
                "branch_policy": branch_policy, "created_at": _now(), "updated_at": _now()}

    def _env_summary(self, repo: str, name: str) -> dict[str, Any]:
        state = self.environments.get(repo, {}).get(name, {})
        return {"id": 7, "node_id": "EN_7", "name": name, "url": f"{self.url}/repos/{repo}/environments/{name}",
                "html_url": f"https://github.example/{repo}/deployments/activity_log?environments_filter={name}",
                "created_at": state.get("created_at", _now()), "updated_at": state.get("updated_at", _now())}

    def _environment(self, repo: str, name: str) -> dict[str, Any]:
        """GET /repos/{repo}/environments/{name} as GitHub answers it."""
        state = self.environments[repo][name]
        rules: list[dict[str, Any]] = []
        if state["wait_timer"]:
            rules.append({"id": 1, "node_id": "GA_1", "type": "wait_timer", "wait_timer": state["wait_timer"]})
        if state["reviewers"]:
            logins = {v: k for k, v in self.users.items()}
            teams = {v: k for k, v in self.teams.items()}
            reviewers = [{"type": "User", "reviewer": self._simple_user(logins[i])} if kind == "User"
                         else {"type": "Team", "reviewer": self._team(teams[i])} for kind, i in state["reviewers"]]
            rules.append({"id": 2, "node_id": "GA_2", "type": "required_reviewers",
                          "prevent_self_review": state["prevent_self_review"], "reviewers": reviewers})
        if state["branch_policy"] is not None:
            rules.append({"id": 3, "node_id": "GA_3", "type": "branch_policy"})
        return {**self._env_summary(repo, name), "protection_rules": rules,
                "deployment_branch_policy": state["branch_policy"]}

    def _put_environment(self, repo: str, name: str, body: dict[str, Any]) -> tuple:
        """PUT /repos/{repo}/environments/{name}: what is sent is set; what is left out keeps its value."""
        docs = f"{DOCS}/deployments/environments#create-or-update-an-environment"
        reviewers = body.get("reviewers", ...)
        pairs: list[tuple[str, int]] | None = None
        if reviewers is not ...:
            reviewers = reviewers or []
            if len(reviewers) > MAX_REVIEWERS:
                return _validation_failed("Environment", "reviewers",
                                          f"only {MAX_REVIEWERS} reviewers can be required", docs)
            known = {"User": set(self.users.values()), "Team": set(self.teams.values())}
            pairs = []
            for item in reviewers:
                kind, ident = item.get("type"), item.get("id")
                if kind not in known or not isinstance(ident, int) or isinstance(ident, bool):
                    return _validation_failed("Environment", "reviewers", "reviewers need a type (User or Team) "
                                              "and a numeric id", docs)
                if ident not in known[kind]:
                    return _validation_failed("Environment", "reviewers", f"{kind} {ident} was not found", docs)
                pairs.append((kind, ident))
        wait_timer = body.get("wait_timer", ...)
        if wait_timer is not ... and (not isinstance(wait_timer, int) or not 0 <= wait_timer <= 43200):
            return _validation_failed("Environment", "wait_timer", "wait_timer must be 0 to 43200 minutes", docs)
        policy = body.get("deployment_branch_policy", ...)
        if policy not in (..., None):
            if set(policy) != {"protected_branches", "custom_branch_policies"}:
                return _validation_failed("Environment", "deployment_branch_policy",
                                          "protected_branches and custom_branch_policies are both required", docs)
            if policy["protected_branches"] and policy["custom_branch_policies"]:
                return _validation_failed("Environment", "deployment_branch_policy",
                                          "protected_branches and custom_branch_policies cannot both be true", docs)
        envs = self.environments.setdefault(repo, {})
        state = envs.get(name) or self._env_state([], prevent_self_review=False, wait_timer=0, branch_policy=None)
        if pairs is not None:
            state["reviewers"] = pairs
        if "prevent_self_review" in body:
            state["prevent_self_review"] = bool(body["prevent_self_review"])
        if wait_timer is not ...:
            state["wait_timer"] = wait_timer
        if policy is not ...:
            state["branch_policy"] = policy
        state["updated_at"] = _now()
        envs[name] = state
        return 200, self._environment(repo, name)

    def _page(self, items: list[Any], path: str, query: dict[str, list[str]]) -> tuple:
        """One page of a list, with GitHub's Link header (per_page default 30, at most 100)."""
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            return 400, {"message": "Invalid pagination parameter"}
        last = max((len(items) + per_page - 1) // per_page, 1)
        headers = {}
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if page < last:
                args = {k: v[0] for k, v in query.items()}
                args.update(per_page=str(per_page), page=str(number))
                links.append(f'<{self.url}{path}?{urlencode(args)}>; rel="{rel}"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, items[(page - 1) * per_page: page * per_page], headers

    # --- HTTP ---------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if status == 204 else json.dumps(payload).encode()
                self.send_response(status)
                for key, text in (headers or {}).items():
                    self.send_header(key, text)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                parsed = urlparse(self.path)
                record = {"method": self.command, "path": parsed.path, "query": parsed.query, "body": body,
                          "auth": bool(self.headers.get("Authorization"))}
                if fake.on_request is not None:
                    fake.on_request(self.command, parsed.path)
                with fake.lock:
                    fake.requests.append(record)
                    if fake.log_path:
                        with open(fake.log_path, "a", encoding="utf-8") as handle:
                            handle.write(json.dumps(record) + "\n")
                    fake.token = (self.headers.get("Authorization") or "").split(" ")[-1]
                    answer = fake.route(self.command, parsed.path, body, parse_qs(parsed.query))
                self._reply(*answer)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def _dispatch(self, repo: str, body: Any) -> tuple:
        if self.dispatch_failures:
            failure = self.dispatch_failures.pop(0)
            if failure == "rate-limit":
                return 403, {"message": "API rate limit exceeded"}, {
                    "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1)}
            return int(failure), {"message": "upstream trouble"}
        if self.dispatch_error_rate and random.random() < self.dispatch_error_rate:
            return 502, {"message": "bad gateway"}
        self.dispatches.append({"repo": repo, **(body or {})})
        return 204, {}

    def _too_long(self, body: Any, resource: str, docs: str) -> tuple | None:
        text = (body or {}).get("body") if isinstance(body, dict) else None
        if text is not None and len(text) > BODY_LIMIT:
            return 422, {"message": "Validation Failed", "errors": [
                {"resource": resource, "code": "unprocessable", "field": "data",
                 "message": f"Body is too long (maximum is {BODY_LIMIT} characters)"}],
                "documentation_url": docs, "status": "422"}
        return None

    def _list_issues(self, repo: str, query: dict[str, list[str]]) -> tuple:
        """GET /repos/{repo}/issues: issues and pull requests, by state and labels, newest first by default."""
        state = query.get("state", ["open"])[0]
        wanted = [n for n in query.get("labels", [""])[0].split(",") if n]
        items = [i for i in self.issues.get(repo, {}).values()
                 if (state == "all" or i["state"] == state)
                 and all(any(lab["name"] == n for lab in i["labels"]) for n in wanted)]
        items.sort(key=lambda i: i["number"], reverse=query.get("direction", ["desc"])[0] == "desc")
        return self._page(items, f"/repos/{repo}/issues", query)

    def route(self, method: str, path: str, body: Any, query: dict[str, list[str]] | None = None) -> tuple:
        query = query or {}
        if path.startswith("/hooks/"):
            self.webhooks.append({"hook": path, "body": body})
            return 200, {"ok": True}
        if path == "/user" and method == "GET":
            # GET /user answers 403 to installation tokens: Actions' GITHUB_TOKEN (ghs_...) and GitHub Apps'.
            if self.token.startswith("ghs_"):
                docs = "https://docs.github.com/rest/users/users#get-the-authenticated-user"
                return 403, {"message": "Resource not accessible by integration", "documentation_url": docs}
            return 200, {"login": "bot", "id": 1, "type": "User", "url": f"{self.url}/users/bot"}
        m = re.fullmatch(r"/users/([^/]+)", path)
        if m:  # logins are case-insensitive; the answer spells it as the account does
            login = next((known for known in self.users if known.lower() == m.group(1).lower()), None)
            return (200, self._simple_user(login)) if login else (404, {"message": "Not Found"})
        m = re.fullmatch(r"/orgs/([^/]+)(?:/teams/([^/]+))?", path)
        if m and method == "GET":
            org, slug = m.groups()
            if slug is None:
                return (200, {"login": org, "id": self.orgs[org], "url": f"{self.url}/orgs/{org}"}) \
                    if org in self.orgs else (404, {"message": "Not Found"})
            found = f"{org}/{slug}"
            return (200, self._team(found)) if found in self.teams else (404, {"message": "Not Found"})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not m:
            # includes the legacy team endpoints (/teams/{id}, /organizations/{org_id}/team/{id}) that
            # GitHub is closing: recorded, never answered with data here
            return 404, {"message": "Not Found", "documentation_url": DOCS}
        repo, rest = m.group(1), m.group(2) or ""
        if rest == "/dispatches" and method == "POST":
            return self._dispatch(repo, body)
        if rest == "":
            owner, name = repo.split("/")
            return 200, {"full_name": repo, "name": name, "owner": {"login": owner}, "url": f"{self.url}/repos/{repo}",
                         "id": 1}
        issues = self.issues.setdefault(repo, {})
        if rest == "/issues" and method == "GET":
            return self._list_issues(repo, query)
        if rest == "/issues" and method == "POST":
            too_long = self._too_long(body, "Issue", f"{DOCS}/issues/issues#create-an-issue")
            if too_long:
                return too_long
            number = max(issues, default=0) + 1
            labels = [] if self.token in self.read_only_tokens else body.get("labels", [])  # dropped silently
            issues[number] = self._issue(repo, number, body["title"], body.get("body", ""), labels)
            issues[number]["user"] = {"login": self._author()}
            return 201, issues[number]
        m = re.fullmatch(r"/issues/(\d+)", rest)
        if m and method == "GET":
            number = int(m.group(1))
            return (200, issues[number]) if number in issues else (404, {"message": "Not Found"})
        m = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if m:
            issue = issues.get(int(m.group(1)))
            if issue is None:
                return 404, {"message": "Not Found"}
            if method == "GET":
                return self._page(issue["comments"], path, query)
            too_long = self._too_long(body, "IssueComment", f"{DOCS}/issues/comments#create-an-issue-comment")
            if too_long:
                return too_long
            comment_id = self._new_id()
            comment = {"id": comment_id, "body": body["body"], "user": {"login": self._author()},
                       "url": f"{self.url}/repos/{repo}/issues/comments/{comment_id}"}
            issue["comments"].append(comment)
            return 201, comment
        m = re.fullmatch(r"/issues/comments/(\d+)", rest)
        if m and method == "PATCH":
            too_long = self._too_long(body, "IssueComment", f"{DOCS}/issues/comments#update-an-issue-comment")
            if too_long:
                return too_long
            for issue in issues.values():
                for comment in issue["comments"]:
                    if comment["id"] == int(m.group(1)):
                        comment["body"] = body["body"]
                        return 200, comment
            return 404, {"message": "Not Found"}
        m = re.fullmatch(r"/environments/([^/]+)", rest)
        if m:
            envs = self.environments.setdefault(repo, {})
            name = m.group(1)
            if method == "GET":
                return (200, self._environment(repo, name)) if name in envs else (404, {"message": "Not Found"})
            if method == "PUT":
                return self._put_environment(repo, name, body or {})
        m = re.fullmatch(r"/actions/runs/(\d+)/approvals", rest)
        if m and method == "GET":
            # No paging parameters and no order promised: answered newest first.
            return 200, list(reversed(self.approvals.get(f"{repo}#{m.group(1)}", [])))
        if rest == "/deployments" and method == "GET":
            found = [d for d in reversed(self.deployments.get(repo, []))  # newest first
                     if all(d[key] == query[key][0] for key in ("sha", "ref", "task", "environment") if key in query)]
            return self._page(found, path, query)
        m = re.fullmatch(r"/deployments/(\d+)/statuses", rest)
        if m and method == "GET":
            deployment_id = int(m.group(1))
            if not any(d["id"] == deployment_id for d in self.deployments.get(repo, [])):
                return 404, {"message": "Not Found"}
            return self._page(list(reversed(self.statuses.get(deployment_id, []))), path, query)  # newest first
        return 404, {"message": f"Not Found: {method} {path}"}


def main() -> None:
    parser = argparse.ArgumentParser(description="Stand-in for GitHub's REST API, for act runs.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", help="JSON with protect/approve/pull_request set-up calls.")
    parser.add_argument("--log", required=True, help="Requests are appended here as JSON lines.")
    args = parser.parse_args()
    fake = FakeGitHub(args.port, args.log)
    if args.state:
        for call in json.loads(Path(args.state).read_text()):
            getattr(fake, call[0])(*call[1:])
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
