"""GitHub environments as the human gate: required reviewers, no self-review, protected branches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result


@dataclass(frozen=True)
class EnvironmentsRequest:
    repo: str  # OWNER/REPO
    reviewers: list[str]  # GitHub logins or org/team slugs
    environments: list[str] = field(default_factory=lambda: ["staging", "production"])
    prevent_self_review: bool = True
    protected_branches_only: bool = True
    token: str | None = None  # default: $GITHUB_TOKEN


@dataclass
class EnvironmentsResult(Result):
    repo: str
    environments: list[dict[str, Any]]


def setup_environments(request: EnvironmentsRequest) -> EnvironmentsResult:
    """Create or update each environment; idempotent, and says what changed.

    Reviewers are compared by GitHub's (type, id); at most 6 (GitHub's limit, checked before any
    call); a wait timer set by hand is kept."""
    from model_lifecycle.adapters import github

    unique: dict[str, str] = {}  # GitHub logins and slugs ignore case: alice and Alice are one reviewer
    for name in (r.strip() for r in request.reviewers):
        if name:
            unique.setdefault(name.lower(), name)
    reviewers = list(unique.values())
    if not reviewers:
        raise BadInput("--reviewers must name at least one GitHub login or org/team")
    if len(reviewers) > github.MAX_REVIEWERS:  # refused before any call: GitHub would answer 422
        raise BadInput(f"--reviewers names {len(reviewers)} reviewers; GitHub allows at most "
                       f"{github.MAX_REVIEWERS} per environment", hint="name a team (org/team) instead of its members")
    gh = github.connect(request.token)
    results = [
        github.setup_environment(gh, request.repo, env, reviewers, prevent_self_review=request.prevent_self_review,
                                 protected_branches=request.protected_branches_only)
        for env in request.environments
    ]
    return EnvironmentsResult(request.repo, results)
