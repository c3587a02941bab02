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
from typing import Any

from model_lifecycle.edges import common as cli

EXAMPLES = """\
  RELAY_WEBHOOK_SECRET=... GITHUB_TOKEN=... python scripts/relay.py serve --github-repo acme/churn \\
      --tracking-uri http://mlflow:5000 --db /var/lib/relay/relay.db --port 8787
  RELAY_WEBHOOK_SECRET=... python scripts/relay.py register-webhook --tracking-uri http://mlflow:5000 \\
      --url https://relay.example.com/webhook
"""


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


def _serve(args: Any) -> dict[str, Any]:
    """Run the relay until SIGTERM or SIGINT."""
    from model_lifecycle.api.relay import RelayRequest, start_relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    relay = start_relay(RelayRequest(
        args.github_repo, os.environ.get(args.secret_env, ""), os.environ.get(args.token_env, ""), db=args.db,
        host=args.host, port=args.port, tolerance_seconds=args.tolerance, max_body_bytes=args.max_body,
        reconcile_seconds=args.reconcile_seconds, models=[m.strip() for m in args.models.split(",") if m.strip()],
        tracking_uri=args.tracking_uri, secret_name=f"${args.secret_env}", token_name=f"${args.token_env}",
    ))
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    print(f"relay listening on http://{args.host}:{relay.server.server_address[1]}/webhook", file=sys.stderr, flush=True)
    stopped.wait()
    relay.stop()
    return {"command": "serve"}


def call(args: Any) -> Any:
    if args.command == "serve":
        return _serve(args)
    from model_lifecycle.api.relay import WebhookRequest, register_webhook

    return register_webhook(WebhookRequest(args.url, os.environ.get(args.secret_env, ""), name=args.name,
                                           tracking_uri=args.tracking_uri, secret_name=f"${args.secret_env}"))


def render(result: dict[str, Any]) -> None:
    if result["command"] == "register-webhook":
        print(f"✔ webhook {result['action']}: {result['url']} for {', '.join(result['events'])}")
        print("  The MLflow server needs MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key, the same on every")
        print("  worker and across restarts); for an http:// or private-address relay also")
        print("  MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.")
        print("  MLflow caches webhooks for 60 s per process: events in the first minute may miss it;")
        print("  the relay's reconciler sends those.")


main = cli.command(build_parser, call, render)
