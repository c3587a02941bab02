"""Registration relay: MLflow webhooks in, GitHub repository_dispatch out, with nothing lost.

  serve             run the relay (HTTP intake, forwarding worker, reconciler) until stopped
  register-webhook  create or update the MLflow webhook that points at the relay
  failed            list the events the relay gave up on (version gone, GitHub refused, attempts used up)
  requeue           queue failed events again (--id N, repeatable, or --all)

Secrets come from environment variables, never flags: the webhook secret ($RELAY_WEBHOOK_SECRET)
and the GitHub token ($GITHUB_TOKEN, needs contents: write on the target repository).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import time
from typing import Any

from model_lifecycle.edges import common as cli

STOP_SECONDS = 8  # after SIGTERM, before the relay gives up on a clean exit

EXAMPLES = """\
  RELAY_WEBHOOK_SECRET=... GITHUB_TOKEN=... python scripts/relay.py serve --github-repo acme/churn \\
      --tracking-uri http://mlflow:5000 --db /var/lib/relay/relay.db --port 8787
  RELAY_WEBHOOK_SECRET=... python scripts/relay.py register-webhook --tracking-uri http://mlflow:5000 \\
      --url https://relay.example.com/webhook
  python scripts/relay.py failed --db /var/lib/relay/relay.db
  python scripts/relay.py requeue --db /var/lib/relay/relay.db --id 42     (or --all)
"""


def _positive(kind: type, flag: str):
    """argparse type: a number above zero; the usage error names the flag."""
    import argparse
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{flag} must be above 0, got {text!r}")
        return value

    return parse


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
    serve.add_argument("--max-attempts", type=_positive(int, "--max-attempts"), default=30,
                       help="Attempts per event before it is marked failed (30; see `requeue`).")
    serve.add_argument("--lookup-timeout", type=_positive(float, "--lookup-timeout"), default=10.0,
                       help="Seconds to wait for MLflow's answer when looking up a version's run_id (10).")
    serve.add_argument("--request-timeout", type=_positive(float, "--request-timeout"), default=5.0,
                       help="Seconds a client has to send a request, head and body (5).")
    serve.add_argument("--max-connections", type=_positive(int, "--max-connections"), default=256,
                       help="Open client connections (256, kept below the file-descriptor limit); beyond it "
                            "the longest-idle connection is closed.")
    hook = sub.add_parser("register-webhook", help="Create or update the MLflow webhook.", parents=shared)
    hook.add_argument("--url", required=True, help="The relay's public URL, ending in /webhook.")
    hook.add_argument("--name", default="model-promotion-relay", help="Webhook name (default model-promotion-relay).")
    hook.add_argument("--secret-env", default="RELAY_WEBHOOK_SECRET", help="Variable holding the webhook secret.")
    failed = sub.add_parser("failed", help="List the events the relay gave up on.", parents=shared)
    failed.add_argument("--db", default="relay.db", help="The relay's sqlite file (default relay.db).")
    requeue = sub.add_parser("requeue", help="Queue failed events again.", parents=shared)
    requeue.add_argument("--db", default="relay.db", help="The relay's sqlite file (default relay.db).")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=_positive(int, "--id"), action="append", dest="ids",
                       help="A failed event's id (from `failed`); repeat for several.")
    which.add_argument("--all", action="store_true", help="Every failed event.")
    return parser


def _serve(args: Any) -> dict[str, Any]:
    """Run the relay until SIGTERM or SIGINT.

    The signal handler only records the signal: setting a threading.Event from a handler can
    deadlock (the handler may interrupt the main thread inside that Event's own lock). Stopping is
    bounded: if the relay has not exited ``STOP_SECONDS`` after the signal, every thread's stack
    is written to the log and the process exits (1); queued events are safe in the store."""
    from model_lifecycle.api.relay import RelayRequest, start_relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    relay = start_relay(RelayRequest(
        args.github_repo, os.environ.get(args.secret_env, ""), os.environ.get(args.token_env, ""), db=args.db,
        host=args.host, port=args.port, tolerance_seconds=args.tolerance, max_body_bytes=args.max_body,
        reconcile_seconds=args.reconcile_seconds, models=[m.strip() for m in args.models.split(",") if m.strip()],
        tracking_uri=args.tracking_uri, secret_name=f"${args.secret_env}", token_name=f"${args.token_env}",
        max_attempts=args.max_attempts, lookup_timeout_seconds=args.lookup_timeout,
        request_timeout_seconds=args.request_timeout, max_connections=args.max_connections,
    ))
    print(f"relay listening on http://{args.host}:{relay.server.server_address[1]}/webhook", file=sys.stderr, flush=True)
    while not signals:
        time.sleep(0.2)
    try:
        faulthandler.dump_traceback_later(STOP_SECONDS, exit=True)
    except (RuntimeError, ValueError):  # no stderr to write the stacks to: stop without the watchdog
        pass
    relay.stop()
    return {"command": "serve"}


def call(args: Any) -> Any:
    if args.command == "serve":
        return _serve(args)
    if args.command == "failed":
        from model_lifecycle.api.relay import failed_events

        return failed_events(args.db)
    if args.command == "requeue":
        from model_lifecycle.api.relay import requeue_events

        return requeue_events(args.db, None if args.all else args.ids)
    from model_lifecycle.api.relay import WebhookRequest, register_webhook

    return register_webhook(WebhookRequest(args.url, os.environ.get(args.secret_env, ""), name=args.name,
                                           tracking_uri=args.tracking_uri, secret_name=f"${args.secret_env}"))


def _when(epoch: float | None) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if epoch else "-"


def render(result: dict[str, Any]) -> None:
    if result["command"] == "failed":
        events = result["events"]
        if not events:
            print(f"✔ no failed events in {result['db']}")
            return
        print(f"{len(events)} failed event(s) in {result['db']}:")
        for e in events:
            what = f"v{e['version']}" if e["event_type"] == "model-registered" else f"@{e['alias']} -> v{e['version'] or '-'}"
            print(f"  id {e['id']}: {e['event_type']} {e['model']!r} {what}  failed {_when(e['failed_at'])} after "
                  f"{e['attempts']} attempt(s): {e['error']}")
        print(f"  queue them again: relay.py requeue --db {result['db']} --id ID  (or --all)")
        return
    if result["command"] == "requeue":
        ids = ", ".join(str(i) for i in result["requeued"]) or "none"
        print(f"✔ queued again: {ids} (the running relay sends them within a second)")
        return
    if result["command"] == "register-webhook":
        print(f"✔ webhook {result['action']}: {result['url']} for {', '.join(result['events'])}")
        print("  The MLflow server needs MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (a Fernet key, the same on every")
        print("  worker and across restarts); for an http:// or private-address relay also")
        print("  MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true.")
        print("  MLflow caches webhooks for 60 s per process: events in the first minute may miss it;")
        print("  the relay's reconciler sends those.")


main = cli.command(build_parser, call, render)
