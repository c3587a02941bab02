"""Registration relay: MLflow webhooks in, GitHub repository_dispatch out, with nothing lost.

  serve             run the relay (HTTP intake, forwarding worker, reconciler) until stopped
  register-webhook  create or update the MLflow webhook that points at the relay

Secrets come from environment variables, never flags: the webhook secret ($RELAY_WEBHOOK_SECRET)
and the GitHub token ($GITHUB_TOKEN, needs contents: write on the target repository).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import BadInput

EXAMPLES = """\
  RELAY_WEBHOOK_SECRET=... GITHUB_TOKEN=... python scripts/relay.py serve --github-repo acme/churn \\
      --tracking-uri http://mlflow:5000 --db /var/lib/relay/relay.db --port 8787
  RELAY_WEBHOOK_SECRET=... python scripts/relay.py register-webhook --tracking-uri http://mlflow:5000 \\
      --url https://relay.example.com/webhook
"""
EVENTS = ["model_version.created", "model_version_alias.created", "model_version_alias.deleted"]


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("relay.py", __doc__.splitlines()[0], EXAMPLES, shared=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cli.ArgumentParser)
    shared = [cli.shared_flags()]
    serve = sub.add_parser("serve", help="Run the relay.", parents=shared)
    serve.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1; put HTTPS in front).")
    serve.add_argument("--port", type=int, default=8787, help="Port (default 8787).")
    serve.add_argument("--db", default="relay.db", help="sqlite file holding the queue (default relay.db).")
    serve.add_argument("--github-repo", required=True, help="OWNER/REPO that receives repository_dispatch.")
    serve.add_argument("--secret-env", default="RELAY_WEBHOOK_SECRET", help="Variable holding the webhook secret.")
    serve.add_argument("--token-env", default="GITHUB_TOKEN", help="Variable holding the GitHub token.")
    serve.add_argument("--tolerance", type=int, default=300, help="Accepted clock skew of deliveries, seconds (300).")
    serve.add_argument("--max-body", type=int, default=1 << 20, help="Largest accepted body in bytes (1 MiB).")
    serve.add_argument("--reconcile-seconds", type=float, default=60.0, help="How often to reconcile (60 s).")
    serve.add_argument("--models", default="", help="Comma-separated models to reconcile (default: all).")
    hook = sub.add_parser("register-webhook", help="Create or update the MLflow webhook.", parents=shared)
    hook.add_argument("--url", required=True, help="The relay's public URL, ending in /webhook.")
    hook.add_argument("--name", default="model-promotion-relay", help="Webhook name (default model-promotion-relay).")
    hook.add_argument("--secret-env", default="RELAY_WEBHOOK_SECRET", help="Variable holding the webhook secret.")
    return parser


def _secret(name: str) -> str:
    value = os.environ.get(name, "")
    if len(value) < 16:
        raise BadInput(f"${name} must hold the webhook secret (16 characters or more)")
    return value


def _serve(args: Any) -> dict[str, Any]:
    from model_lifecycle.adapters import github as github_api
    from model_lifecycle.adapters import relay_service

    token = os.environ.get(args.token_env, "")
    if not token:
        raise BadInput(f"${args.token_env} must hold a GitHub token that may send repository_dispatch")
    if args.github_repo.count("/") != 1:
        raise BadInput(f"--github-repo {args.github_repo!r} must look like OWNER/REPO")
    settings = relay_service.Settings(
        secret=_secret(args.secret_env), github_repo=args.github_repo, github_token=token,
        github_api_url=github_api.api_url(), tracking_uri=args.tracking_uri, tolerance_seconds=args.tolerance,
        max_body_bytes=args.max_body, reconcile_seconds=args.reconcile_seconds,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    relay = relay_service.Relay(settings, relay_service.Store(args.db), args.host, args.port)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    relay.start()
    print(f"relay listening on http://{args.host}:{relay.server.server_address[1]}/webhook", file=sys.stderr, flush=True)
    stopped.wait()
    relay.stop()
    return {"ok": True, "command": "serve"}


def _register(args: Any) -> dict[str, Any]:
    from model_lifecycle.adapters import registry

    secret = _secret(args.secret_env)
    client = registry.connect(args.tracking_uri)
    with registry.mlflow_errors():
        existing = next((w for w in client.list_webhooks() if w.name == args.name), None)
        if existing:
            hook = client.update_webhook(existing.webhook_id, url=args.url, events=EVENTS, secret=secret, status="ACTIVE")
            action = "updated"
        else:
            hook = client.create_webhook(args.name, args.url, EVENTS, secret=secret,
                                         description="Forwards registrations to GitHub (model-promotion relay)")
            action = "created"
    return {"ok": True, "command": "register-webhook", "action": action, "webhook_id": hook.webhook_id,
            "url": args.url, "events": EVENTS}


def render(result: dict[str, Any]) -> None:
    if result["command"] == "register-webhook":
        print(f"✔ webhook {result['action']}: {result['url']} for {', '.join(result['events'])}")
        print("  The MLflow server needs MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key, the same on every")
        print("  worker and across restarts); for an http:// or private-address relay also")
        print("  MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.")
        print("  MLflow caches webhooks for 60 s per process: events in the first minute may miss it;")
        print("  the relay's reconciler sends those.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    action = _serve if args.command == "serve" else _register
    return cli.run(lambda: action(args), json_output=args.json, render=render)

