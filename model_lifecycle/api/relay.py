"""The registration relay as steps: start it (MLflow webhooks in, repository_dispatch out), register
the MLflow webhook that points at it, list the events it gave up on and queue them again. Secrets
arrive in the request, never from flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_lifecycle import settings
from model_lifecycle.adapters import registry
from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result

EVENTS = ["model_version.created", "model_version_alias.created", "model_version_alias.deleted"]
MIN_SECRET_CHARS = 32  # bytes (UTF-8) of the HMAC key, not counting surrounding whitespace


def _check_secret(secret: str, where: str) -> str:
    """The webhook secret, or BadInput naming the variable: unset, whitespace, or shorter than
    MIN_SECRET_CHARS bytes (surrounding whitespace does not count: it is usually a pasting slip)."""
    if len((secret or "").strip().encode()) < MIN_SECRET_CHARS:
        problem = "is not set" if not secret else "is only whitespace" if not secret.strip() else "is too short"
        raise BadInput(
            f"{where} {problem}: it must hold the webhook secret, at least {MIN_SECRET_CHARS} bytes",
            hint='generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"',
        )
    return secret


@dataclass(frozen=True)
class RelayRequest:
    github_repo: str  # OWNER/REPO that receives repository_dispatch
    secret: str
    github_token: str
    db: str = "relay.db"
    host: str = "127.0.0.1"
    port: int = 8787
    tolerance_seconds: int = 300
    max_body_bytes: int = 1 << 20
    reconcile_seconds: float = 60.0
    models: list[str] = field(default_factory=list)  # reconcile only these (default: all)
    tracking_uri: str | None = None
    secret_name: str = "$RELAY_WEBHOOK_SECRET"  # for messages
    token_name: str = "$GITHUB_TOKEN"
    max_attempts: int = 30  # per event, then it is failed (see requeue_events)
    lookup_timeout_seconds: float = 10.0  # MLflow look-up of run_id/source, per attempt
    request_timeout_seconds: float = 5.0  # for a client to send one request
    max_connections: int = 256  # open connections (capped below the file-descriptor limit)


def start_relay(request: RelayRequest) -> Any:
    """Start the relay (intake, forwarding worker, reconciler) and return it running; ``stop()`` ends it."""
    from model_lifecycle.adapters import relay_service

    secret = _check_secret(request.secret, request.secret_name)
    if not request.github_token:
        raise BadInput(f"{request.token_name} must hold a GitHub token that may send repository_dispatch")
    if request.github_repo.count("/") != 1:
        raise BadInput(f"--github-repo {request.github_repo!r} must look like OWNER/REPO")
    config = relay_service.Settings(
        secret=secret, github_repo=request.github_repo,
        github_token=request.github_token, github_api_url=settings.GITHUB_API_URL.get() or "",
        tracking_uri=request.tracking_uri, tolerance_seconds=request.tolerance_seconds,
        max_body_bytes=request.max_body_bytes, reconcile_seconds=request.reconcile_seconds, models=request.models,
        max_attempts=request.max_attempts, lookup_timeout_seconds=request.lookup_timeout_seconds,
        request_timeout_seconds=request.request_timeout_seconds, max_connections=request.max_connections,
    )
    relay = relay_service.Relay(config, relay_service.Store(request.db), request.host, request.port)
    relay.start()
    return relay


@dataclass
class FailedEventsResult(Result):
    command: str
    db: str
    events: list[dict[str, Any]]  # id, model, event_type, version, alias, source, attempts, error, received_at, failed_at


@dataclass
class RequeueResult(Result):
    command: str
    db: str
    requeued: list[int]


def _open_store(db: str) -> Any:
    from model_lifecycle.adapters import relay_service

    try:
        return relay_service.Store(db, create=False)
    except FileNotFoundError:
        raise BadInput(f"no relay database at {db}", hint="pass the --db the relay serves with") from None


def failed_events(db: str) -> FailedEventsResult:
    """The events the relay gave up on (version gone from MLflow, GitHub refused, attempts used up)."""
    store = _open_store(db)
    try:
        return FailedEventsResult("failed", db, store.failed())
    finally:
        store.close()


def requeue_events(db: str, ids: list[int] | None) -> RequeueResult:
    """Queue failed events again (``ids``, or all when None) with fresh attempts; the running relay
    sends them within a second. An id that is not a failed event is refused and nothing changes."""
    store = _open_store(db)
    try:
        requeued = store.requeue(ids)
    except ValueError as exc:
        raise BadInput(f"not failed events: {exc}", hint="list them with: relay.py failed --db " + db) from None
    finally:
        store.close()
    return RequeueResult("requeue", db, requeued)


@dataclass(frozen=True)
class WebhookRequest:
    url: str  # the relay's public URL, ending in /webhook
    secret: str
    name: str = "model-promotion-relay"
    tracking_uri: str | None = None
    secret_name: str = "$RELAY_WEBHOOK_SECRET"


@dataclass
class WebhookResult(Result):
    command: str
    action: str  # created | updated
    webhook_id: str
    url: str
    events: list[str]


def register_webhook(request: WebhookRequest) -> WebhookResult:
    """Create or update the MLflow webhook that points at the relay."""
    secret = _check_secret(request.secret, request.secret_name)
    client = registry.connect(request.tracking_uri)
    with registry.mlflow_errors():
        existing = next((w for w in client.list_webhooks() if w.name == request.name), None)
        if existing:
            hook = client.update_webhook(existing.webhook_id, url=request.url, events=EVENTS, secret=secret,
                                         status="ACTIVE")
            action = "updated"
        else:
            hook = client.create_webhook(request.name, request.url, EVENTS, secret=secret,
                                         description="Forwards registrations to GitHub (model-promotion relay)")
            action = "created"
    return WebhookResult("register-webhook", action, hook.webhook_id, request.url, EVENTS)
