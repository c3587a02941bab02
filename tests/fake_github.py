"""A local HTTP server that answers like GitHub's REST API for the calls the toolkit makes.

GitHub is the one outside service no machine here reaches, so tests point GITHUB_API_URL at this.
It keeps state (issues, comments, environments, run approvals), records every request, and also
accepts Slack-style webhook posts on /hooks/<name>. Run it standalone for act:
``python tests/fake_github.py --port N --state state.json --log requests.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class FakeGitHub:
    def __init__(self, port: int = 0, log_path: str | None = None) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.issues: dict[str, dict[int, dict[str, Any]]] = {}
        self.environments: dict[str, dict[str, dict[str, Any]]] = {}
        self.approvals: dict[str, list[dict[str, Any]]] = {}
        self.users = {"alice": 101, "bob": 102, "carol": 103}
        self.webhooks: list[dict[str, Any]] = []
        self.dispatches: list[dict[str, Any]] = []
        # Scripted failures of POST /repos/{repo}/dispatches: "502", "rate-limit" (403 with
        # x-ratelimit-remaining 0 and a reset 1 s ahead) or a float p for random 5xx with probability p.
        self.dispatch_failures: list[str] = []
        self.dispatch_error_rate = 0.0
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

    # --- state helpers for tests --------------------------------------------------------------
    def protect(self, repo: str, env: str, reviewers: list[str]) -> None:
        self.environments.setdefault(repo, {})[env] = self._environment(repo, env, reviewers, True, True)

    def approve(self, repo: str, run_id: str, env: str, user: str, comment: str) -> None:
        self.approvals.setdefault(f"{repo}#{run_id}", []).append({
            "state": "approved", "comment": comment, "environments": [{"name": env}],
            "user": {"login": user, "id": self.users.get(user, 1)}, "created_at": "2026-11-27T10:00:00Z",
        })

    def pull_request(self, repo: str, number: int) -> None:
        self.issues.setdefault(repo, {})[number] = self._issue(repo, number, f"PR {number}", "", [])

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # --- JSON shapes --------------------------------------------------------------------------
    def _issue(self, repo: str, number: int, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return {"number": number, "title": title, "body": body, "state": "open", "comments": [],
                "url": f"{self.url}/repos/{repo}/issues/{number}", "labels": [{"name": n} for n in labels],
                "html_url": f"https://github.example/{repo}/issues/{number}", "user": {"login": "bot"}}

    def _author(self) -> str:
        """Who a write is by: the token's user; Actions' GITHUB_TOKEN (ghs_...) writes as github-actions[bot]."""
        return "github-actions[bot]" if self.token.startswith("ghs_") else "bot"

    def _environment(self, repo: str, name: str, reviewers: list[str], prevent: bool, protected: bool) -> dict[str, Any]:
        rules = []
        if reviewers:
            rules.append({"id": 1, "type": "required_reviewers", "prevent_self_review": prevent,
                          "reviewers": [{"type": "User", "reviewer": {"login": r, "id": self.users.get(r, 1)}} for r in reviewers]})
        return {"id": 7, "name": name, "url": f"{self.url}/repos/{repo}/environments/{name}",
                "protection_rules": rules,
                "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False} if protected else None}

    # --- HTTP ---------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
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
                with fake.lock:
                    fake.requests.append(record)
                    if fake.log_path:
                        with open(fake.log_path, "a", encoding="utf-8") as handle:
                            handle.write(json.dumps(record) + "\n")
                    fake.token = (self.headers.get("Authorization") or "").split(" ")[-1]
                    answer = fake.route(self.command, parsed.path, body)
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

    def route(self, method: str, path: str, body: Any) -> tuple:
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
        if m:
            login = m.group(1)
            return (200, {"login": login, "id": self.users[login], "url": f"{self.url}/users/{login}"}) if login in self.users \
                else (404, {"message": "Not Found"})
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not m:
            return 404, {"message": "Not Found"}
        repo, rest = m.group(1), m.group(2) or ""
        if rest == "/dispatches" and method == "POST":
            return self._dispatch(repo, body)
        if rest == "":
            owner, name = repo.split("/")
            return 200, {"full_name": repo, "name": name, "owner": {"login": owner}, "url": f"{self.url}/repos/{repo}",
                         "id": 1}
        issues = self.issues.setdefault(repo, {})
        if rest == "/issues" and method == "GET":
            return 200, [i for i in issues.values() if any(lab["name"] == "model-approval" for lab in i["labels"])]
        if rest == "/issues" and method == "POST":
            number = max(issues, default=0) + 1
            issues[number] = self._issue(repo, number, body["title"], body.get("body", ""), body.get("labels", []))
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
                return 200, issue["comments"]
            self.next_id += 1
            comment = {"id": self.next_id, "body": body["body"], "user": {"login": self._author()},
                       "url": f"{self.url}/repos/{repo}/issues/comments/{self.next_id}"}
            issue["comments"].append(comment)
            return 201, comment
        m = re.fullmatch(r"/issues/comments/(\d+)", rest)
        if m and method == "PATCH":
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
                return (200, envs[name]) if name in envs else (404, {"message": "Not Found"})
            if method == "PUT":
                logins = {v: k for k, v in self.users.items()}
                reviewers = [logins.get(r["id"], str(r["id"])) for r in (body or {}).get("reviewers") or []]
                envs[name] = self._environment(repo, name, reviewers, bool((body or {}).get("prevent_self_review")),
                                               bool(((body or {}).get("deployment_branch_policy") or {}).get("protected_branches")))
                return 200, envs[name]
        m = re.fullmatch(r"/actions/runs/(\d+)/approvals", rest)
        if m:
            return 200, self.approvals.get(f"{repo}#{m.group(1)}", [])
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
