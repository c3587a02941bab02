"""Releasing a pull request's candidate when the pull request merges.

A version registered by a pull request's run carries ``lifecycle.pull_request``: it is a candidate
under review, which the pull-request workflow gates and reports on but never stages, and which the
registration relay does not announce. When the pull request merges, ``release_candidate`` finds its
newest candidate and sends the same ``model-registered`` repository_dispatch the relay sends for a
registration, so the registration workflow takes the reviewed model through the gate, staging and the
production approval, on the default branch (where the production environment's branch rules hold).
"""

from __future__ import annotations

from dataclasses import dataclass

from model_lifecycle import settings, tags
from model_lifecycle.adapters import registry, relay_service
from model_lifecycle.core import audit, lineage
from model_lifecycle.errors import BadInput, Refused, ServiceError, ToolkitError
from model_lifecycle.results import Result

# the relay's event type for a registration: the registration workflow listens for it
EVENT_TYPE = relay_service.EVENT_TYPES[("model_version", "created")]


@dataclass(frozen=True)
class ReleaseRequest:
    model: str
    pull_request: str
    repo: str | None = None  # OWNER/REPO (default $GITHUB_REPOSITORY)
    head_sha: str | None = None  # the merged head: only a candidate built from it is released
    dry_run: bool = False  # find the candidate, send nothing
    again: bool = False  # send a candidate that was already released once more
    reason: str | None = None  # for the audit record
    tracking_uri: str | None = None


@dataclass
class ReleaseResult(Result):
    model: str
    pull_request: str
    version: str
    source: str | None
    run_id: str | None
    repo: str | None
    dispatched: bool
    message: str


def release_candidate(request: ReleaseRequest) -> ReleaseResult:
    number = lineage.pull_request_number(request.pull_request)
    repo = request.repo or settings.GITHUB_REPOSITORY.get()
    if not request.dry_run and not repo:
        raise BadInput("no repository to dispatch to", hint="pass --repo OWNER/REPO (or run in GitHub Actions)")
    client = registry.connect(request.tracking_uri)
    model = registry.get_model(client, request.model)  # an unknown model is bad input, named
    candidates = registry.list_versions(client, request.model, tag=(tags.PULL_REQUEST, number))
    released = [v for v in candidates if (v.tags or {}).get(tags.PULL_REQUEST_RELEASED_AT)]
    if released and not request.again:  # a re-run of the release job: a pull request merges once
        last = max(released, key=lambda v: (v.tags or {})[tags.PULL_REQUEST_RELEASED_AT])
        archived = " (archived since)" if (last.tags or {}).get(tags.ARCHIVED_AT) else ""
        message = (f"pull request #{number}'s candidate v{last.version} was already released at "
                   f"{last.tags[tags.PULL_REQUEST_RELEASED_AT]}{archived}: nothing sent (--again sends its newest "
                   "candidate once more)")
        return ReleaseResult(request.model, number, str(last.version), last.source, last.run_id, repo, False, message)
    found = [v for v in candidates if not (v.tags or {}).get(tags.ARCHIVED_AT)]
    if not found:
        raise Refused(
            f"pull request #{number} has no candidate version of {request.model!r}: nothing to release",
            hint=f"its training registers one through the toolkit under the pull_request event "
                 f"({tags.PULL_REQUEST}={number}); or run the registration workflow for a version by hand",
        )
    newest = max(found, key=lambda v: int(v.version))
    if request.head_sha:
        built = [v for v in found if (v.tags or {}).get(tags.PULL_REQUEST_HEAD) == request.head_sha]
        if not built:
            raise Refused(
                f"pull request #{number} merged at {request.head_sha[:12]}, but its newest candidate v{newest.version} "
                f"was built from {_short_sha((newest.tags or {}).get(tags.PULL_REQUEST_HEAD))}: "
                "the merged code's training did not register (cancelled or failed?); nothing was released",
                hint="run the registration workflow for the version to release by hand, or train again on main")
        newest = max(built, key=lambda v: int(v.version))
    version = str(newest.version)
    payload = {"name": request.model, "version": version, "source": newest.source,
               "run_id": newest.run_id, "pull_request": number}
    if request.dry_run:
        message = f"v{version} is pull request #{number}'s candidate (dry run: nothing sent)"
        return ReleaseResult(request.model, number, version, newest.source, newest.run_id, repo, False, message)
    from model_lifecycle.adapters import github

    github.repository_dispatch(github.connect(), repo, EVENT_TYPE, payload)
    # Recorded after the dispatch, so a failed dispatch is simply re-run; the audit event before the
    # tag, so a release the tag calls done always has its event. A record that fails says what was sent.
    event = audit.new_event("release", request.model, version, reason=request.reason, details={
        "pull_request": number, "head_sha": (newest.tags or {}).get(tags.PULL_REQUEST_HEAD), "repo": repo,
        "event_type": EVENT_TYPE, **({"again": True} if released else {})})
    try:
        with registry.mlflow_errors():
            audit.append(client, model, event)
            client.set_model_version_tag(request.model, version, tags.PULL_REQUEST_RELEASED_AT, event["time"])
    except ToolkitError as exc:
        raise ServiceError(
            f"v{version} was sent to {repo} ({EVENT_TYPE}), but recording the release in MLflow failed: {exc}",
            hint="do not re-run the release job (it would send it again); the registration workflow is under way",
        ) from exc
    message = (f"released v{version}, pull request #{number}'s candidate: {EVENT_TYPE} sent to {repo}; "
               "the registration workflow takes it through the gate, staging and the production approval")
    return ReleaseResult(request.model, number, version, newest.source, newest.run_id, repo, True, message)


def _short_sha(sha: str | None) -> str:
    return sha[:12] if sha else "an unrecorded commit"
