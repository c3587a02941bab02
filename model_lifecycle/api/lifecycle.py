"""The registry steps: register a version, stage it, promote it, archive it, roll production back.

Each function takes a request object and returns a result object; it never parses argv and never
prints. Failures are exceptions carrying their exit code (``model_lifecycle.errors``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from model_lifecycle import settings, tags
from model_lifecycle.adapters import registry
from model_lifecycle.core import lifecycle
from model_lifecycle.core.lifecycle import AliasNames, Change
from model_lifecycle.errors import BadInput, Refused
from model_lifecycle.results import Result

_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]+)$")
_RUN_URI = re.compile(r"^runs:/([0-9a-f]{32})/.+$")


# --- register -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterRequest:
    model: str
    model_uri: str  # models:/m-<id> (MLflow 3) or runs:/<run_id>/<path>
    git_commit: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    actor: str | None = None
    tracking_uri: str | None = None
    pull_request: str | None = None  # the candidate of this pull request (default: the Actions run's, if any)


@dataclass
class RegisterResult(Result):
    model: str
    version: str
    model_uri: str
    source: str
    tags: dict[str, str]


def register(request: RegisterRequest) -> RegisterResult:
    """Register a logged model as a new version, tagged with its lineage, and audit it."""
    import mlflow

    from model_lifecycle.core import audit, lineage

    name = request.model
    if not name.strip() or any(c in name for c in "/:"):
        raise BadInput(f"--model {name!r} is not a valid registered model name (no '/' or ':')")
    client = registry.connect(request.tracking_uri)
    run_id = _training_run_id(client, request.model_uri)
    with registry.mlflow_errors(not_found=f"--model-uri {request.model_uri!r}: training run {run_id} not found"):
        run = client.get_run(run_id)
    reserved = sorted(k for k in request.tags if k.startswith(tags.PREFIX))
    if reserved:  # the toolkit's own tags are written by its steps only (a forged candidate tag, a fake verdict)
        raise BadInput(f"--tag {reserved[0]!r}: keys under {tags.PREFIX!r} are the toolkit's own",
                       hint="use another prefix for your tags; lineage, pull request and verdict tags are set by the steps")
    version_tags = {**_lineage_tags(run, request.git_commit), **request.tags}
    number, head = lineage.pull_request()
    pull_request = request.pull_request or number
    if pull_request is not None:
        version_tags[tags.PULL_REQUEST] = lineage.pull_request_number(pull_request)
        if head and version_tags[tags.PULL_REQUEST] == number:
            version_tags[tags.PULL_REQUEST_HEAD] = head
    version_tags[tags.REGISTERED_BY] = audit.actor(request.actor)
    with registry.mlflow_errors():
        version = mlflow.register_model(request.model_uri, name, tags=version_tags)
    model = registry.get_model(client, name)
    event = audit.new_event(
        "register", name, str(version.version), reason=request.reason, actor_name=request.actor,
        details={"source": version.source, "training_run_id": run_id, "git_commit": version_tags.get(tags.GIT_COMMIT),
                 **({"pull_request": version_tags[tags.PULL_REQUEST]} if tags.PULL_REQUEST in version_tags else {})},
    )
    audit.append(client, model, event)
    return RegisterResult(name, str(version.version), f"models:/{name}/{version.version}", version.source, version_tags)


def _training_run_id(client: Any, model_uri: str) -> str:
    """The run that produced the model, from either URI form; bad URIs are named."""
    logged = _LOGGED_MODEL.match(model_uri)
    if logged:
        with registry.mlflow_errors(not_found=f"--model-uri {model_uri!r}: no logged model with that id"):
            model = client.get_logged_model(logged.group(1))
        if not model.source_run_id:
            raise BadInput(f"--model-uri {model_uri!r} was not logged from a run; lineage needs the training run")
        return model.source_run_id
    run = _RUN_URI.match(model_uri)
    if run:
        return run.group(1)
    raise BadInput(
        f"--model-uri {model_uri!r} is not a logged model URI",
        hint="use models:/m-<id> as printed by log_model, or runs:/<run_id>/<artifact_path>",
    )


def _lineage_tags(run: Any, git_commit: str | None) -> dict[str, str]:
    from model_lifecycle.core import audit, lineage

    found = {tags.TRAINING_RUN_ID: run.info.run_id}
    commit = git_commit or run.data.tags.get(tags.GIT_COMMIT) or run.data.tags.get(
        "mlflow.source.git.commit"
    ) or lineage.git_commit()
    if commit:
        found[tags.GIT_COMMIT] = commit
    url = audit.github_run_url()
    if url:
        found[tags.GITHUB_RUN_URL] = url
    for name, facts in lineage.dataset_facts(run).items():
        for fact in ("sha256", "rows", "context", "mlflow_digest"):
            if facts.get(fact):
                found[tags.dataset(name, fact)] = facts[fact]
    return found


# --- stage, promote, archive, rollback --------------------------------------------------------------


@dataclass(frozen=True)
class StageRequest:
    model: str
    version: str | int
    reason: str | None = None
    actor: str | None = None
    force: bool = False  # stage an archived version again
    evidence: dict[str, str] = field(default_factory=dict)  # KIND -> digest; the verdict comes from the registry
    legacy_stages: bool = False
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


def stage(request: StageRequest) -> Change:
    """Point @challenger at the version; the gate's verdict digest on the version is the evidence."""
    version = registry.parse_version(request.version)
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    return lifecycle.stage(client, request.model, version, names, reason=request.reason, actor=request.actor,
                           evidence=dict(request.evidence), force=request.force,
                           legacy_stages=request.legacy_stages)


@dataclass(frozen=True)
class Approval:
    """Who approved a production promotion, where, and when (time unknown is None)."""

    approver: str | None = None
    source: str = "local"  # local | github-environment
    comment: str | None = None
    time: str | None = None
    environment: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class PromoteRequest:
    model: str
    version: str | int
    expect_champion: str | None = None  # compare-and-set: the champion you saw, or "none"
    force: bool = False  # promote a version that is not the challenger (needs a reason)
    reason: str | None = None
    actor: str | None = None
    approval: Approval | None = None  # a local approval, recorded as given
    github_environment: str | None = None  # confirm the approval through GitHub's API for this environment
    allow_unprotected_environment: bool = False
    evidence: dict[str, str] = field(default_factory=dict)
    skip_card_check: bool = False  # needs a reason; recorded
    legacy_stages: bool = False
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


def promote(request: PromoteRequest) -> Change:
    """Move @champion to the version: compare-and-set, the human gate, the card gate, audited."""
    version = registry.parse_version(request.version)
    names = request.aliases.validated()
    expect = request.expect_champion
    if expect is not None:
        expect = lifecycle.NO_CHAMPION if str(expect).strip().lower() == lifecycle.NO_CHAMPION else (
            registry.parse_version(expect, "--expect-champion"))
    lifecycle.require_reason_for_force(request.force, request.reason)  # usage errors before any look-up
    if request.skip_card_check and not request.reason:
        raise BadInput("--skip-card-check needs --reason: say why the card gate is bypassed")
    client = registry.connect(request.tracking_uri)
    # Bad input before the approval and card gates (which read more, and would say "not ready"):
    # the one read of the version, handed to core.lifecycle.promote (which checks it again).
    read = registry.get_version(client, request.model, version)
    if registry.is_archived(read):
        raise BadInput(
            f"version {version} of {request.model!r} is archived",
            hint="stage it again first (transition --to staging --force --reason ...)",
        )
    approval = _github_approval(request) if request.github_environment else request.approval
    evidence = dict(request.evidence)
    approver = approval.approver if approval else None
    recorded = None
    if approval is not None:
        recorded = {k: v for k, v in vars(approval).items() if k != "approver" and v is not None}
    return lifecycle.promote(
        client, request.model, version, names, expect_champion=expect, force=request.force,
        reason=request.reason, actor=request.actor, approver=approver, approval=recorded, evidence=evidence,
        gate=lambda mv: _card_gate(client, request, version, evidence, approver, mv),
        legacy_stages=request.legacy_stages, read=read,
    )


def _github_approval(request: PromoteRequest) -> Approval:
    """The human gate: the GitHub environment's required reviewers must have approved this run.

    Approver and comment come from the run's approvals (GET .../actions/runs/{id}/approvals); that
    answer has no time and no order, so every approver of the environment is recorded (sorted), and
    the time is when GitHub released the approved job, read from the run's deployment to the
    environment and its statuses, or None when GitHub does not say."""
    from model_lifecycle.adapters import github

    repo, run_id = settings.GITHUB_REPOSITORY.get(), settings.GITHUB_RUN_ID.get()
    if not repo or not run_id:
        raise BadInput("--github-approval needs $GITHUB_REPOSITORY and $GITHUB_RUN_ID (run it inside GitHub Actions)")
    gh = github.connect()
    environment = request.github_environment or "production"
    if not github.environment_protected(gh, repo, environment):
        if not request.allow_unprotected_environment:
            raise Refused(
                f"environment {environment!r} of {repo} has no required reviewers, so nobody approved this "
                "promotion; nothing was changed",
                hint="add reviewers (setup_environments.py), or set require-approval: false to accept that",
            )
        return Approval(None, "github-environment", "environment has no required reviewers (require-approval: false)",
                        environment=environment)
    approvals = github.run_approvals(gh, repo, run_id, environment)
    if not approvals:
        raise Refused(
            f"no approval of run {run_id} for environment {environment!r} was found; nothing was changed",
            hint="a required reviewer must approve the deployment in the run's page",
        )
    approvers = list(dict.fromkeys(a.user for a in approvals))
    comments = list(dict.fromkeys(a.comment for a in approvals if a.comment))
    time = github.approval_time(gh, repo, run_id, environment, settings.GITHUB_SHA.get())
    return Approval(", ".join(approvers), "github-environment", " | ".join(comments) or None, time,
                    environment, run_id)


def _card_gate(client: Any, request: PromoteRequest, version: str, evidence: dict[str, str],
               approver: Any = ..., mv: Any = None) -> dict[str, Any]:
    """Production needs a complete, current model card; its sha256 becomes evidence of the promotion.

    ``approver`` is who approved this promotion as resolved by ``promote`` (``--approver``, or the
    GitHub environment's reviewers, comma-separated); when not passed, the request's local approval.
    A high-risk card must not be approved by any of its own authors."""
    from model_lifecycle.core import cards

    if request.skip_card_check:
        return {"card_check": "skipped"}
    if approver is ...:
        approver = request.approval.approver if request.approval else None
    card, problems = cards.check_version(client, request.model, version, mv)
    hint = "complete model-card.yml, run model_card.py build, then promote again"
    if card is not None and cards.get_path(card["team"], "card.risk.ai_act_tier") == "high":
        names = list(dict.fromkeys([approver, *(approver or "").split(",")] if approver and "," in approver
                                   else [approver]))
        found = {author: name.strip() for name in reversed(names)
                 if name and (author := cards.author_of(card["team"], name))}
        if found:
            who = ", ".join(f"{name!r} (card.authors: {author!r})" for author, name in found.items())
            problems = [f"the approver {who} is an author of this high-risk card; someone who did not write it "
                        "must approve", *problems]
            hint = "have a reviewer who is not among card.authors approve the promotion"
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise Refused(
            f"the model card of {request.model!r} v{version} is not ready: {shown}; nothing was changed", hint=hint,
        )
    evidence["card"] = cards.sha256(card)
    return {"card_check": "passed"}


@dataclass(frozen=True)
class ArchiveRequest:
    model: str
    version: str | int
    reason: str | None = None
    actor: str | None = None
    legacy_stages: bool = False
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


def archive(request: ArchiveRequest) -> Change:
    """Retire one version: mark it archived and remove its aliases (never the champion)."""
    version = registry.parse_version(request.version)
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    return lifecycle.archive(client, request.model, version, names, reason=request.reason, actor=request.actor,
                             legacy_stages=request.legacy_stages)


@dataclass(frozen=True)
class RepairRequest:
    model: str
    reason: str | None = None
    actor: str | None = None
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


def repair(request: RepairRequest) -> Change:
    """Set the aliases back to the audit record after a late write (``status`` reports one); audited."""
    names = request.aliases.validated()
    client = registry.connect(request.tracking_uri)
    return lifecycle.repair(client, request.model, names, reason=request.reason, actor=request.actor)


@dataclass(frozen=True)
class RollbackRequest:
    model: str
    reason: str
    to_version: str | int | None = None  # an earlier recorded champion; default: the previous one
    actor: str | None = None
    legacy_stages: bool = False
    expect_champion: str | int | None = None  # compare-and-set: roll back only if @champion is still this
    evidence: dict[str, str] = field(default_factory=dict)  # e.g. the monitoring run and its findings' digest
    refuse_archived: bool = False  # refuse an archived target instead of restoring it (automatic rollback)
    aliases: AliasNames = field(default_factory=AliasNames.from_settings)
    tracking_uri: str | None = None


def rollback(request: RollbackRequest) -> Change:
    """Move @champion back to the previous champion as recorded in the audit record."""
    names = request.aliases.validated()
    to_version = registry.parse_version(request.to_version, "--to-version") if request.to_version else None
    expect = registry.parse_version(request.expect_champion, "--expect-champion") if request.expect_champion else None
    client = registry.connect(request.tracking_uri)
    return lifecycle.rollback(client, request.model, names, reason=request.reason, to_version=to_version,
                              actor=request.actor, legacy_stages=request.legacy_stages, expect_champion=expect,
                              evidence=dict(request.evidence) or None, refuse_archived=request.refuse_archived)
