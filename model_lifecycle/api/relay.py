"""The registration relay as steps: start it (MLflow webhooks in, repository_dispatch out) and
register the MLflow webhook that points at it. Secrets arrive in the request, never from flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_lifecycle import settings
from model_lifecycle.adapters import registry
from model_lifecycle.errors import BadInput
from model_lifecycle.results import Result

EVENTS = ["model_version.created", "model_version_alias.created", "model_version_alias.deleted"]
MIN_SECRET_CHARS = 16


def _check_secret(secret: str, where: str) -> str:
    if len(secret or "") < MIN_SECRET_CHARS:
        raise BadInput(f"{where} must hold the webhook secret ({MIN_SECRET_CHARS} characters or more)")
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


def start_relay(request: RelayRequest) -> Any:
    """Start the relay (intake, forwarding worker, reconciler) and return it running; ``stop()`` ends it."""
    from model_lifecycle.adapters import relay_service

    if not request.github_token:
        raise BadInput(f"{request.token_name} must hold a GitHub token that may send repository_dispatch")
    if request.github_repo.count("/") != 1:
        raise BadInput(f"--github-repo {request.github_repo!r} must look like OWNER/REPO")
    config = relay_service.Settings(
        secret=_check_secret(request.secret, request.secret_name), github_repo=request.github_repo,
        github_token=request.github_token, github_api_url=settings.GITHUB_API_URL.get() or "",
        tracking_uri=request.tracking_uri, tolerance_seconds=request.tolerance_seconds,
        max_body_bytes=request.max_body_bytes, reconcile_seconds=request.reconcile_seconds, models=request.models,
    )
    relay = relay_service.Relay(config, relay_service.Store(request.db), request.host, request.port)
    relay.start()
    return relay


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
