"""Serve the version behind an alias with MLflow's scoring app; follow the alias; capture predictions.

Every answer carries X-Model-Version; /health says what is served and since when; /metrics is
Prometheus text; POST /-/reload (from loopback) re-resolves the alias at once. A version that
fails to load is never switched to.
"""

from __future__ import annotations

from typing import Any

from model_lifecycle import settings
from model_lifecycle.edges import common as cli

EXAMPLES = """\
  python scripts/serve.py --model churn --alias champion --port 8080
  python scripts/serve.py --model churn --port 8080 --capture-dir /var/lib/capture --capture-exclude email,phone
  python scripts/serve.py --model churn --port 8080 --capture-dir s3://bucket/churn --shadow-alias challenger \\
      --shadow-fraction 0.1
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("serve.py", __doc__.splitlines()[0], EXAMPLES)
    cli.add_model_flag(parser)
    parser.add_argument("--alias", default=settings.CHAMPION_ALIAS.get(),
                        help="Alias to follow (default: champion, or $LIFECYCLE_CHAMPION_ALIAS).")
    parser.add_argument("--version", help="Serve this version instead of following the alias (staging checks).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=cli.bounded(int, 1, 65535, "--port"), default=8080, help="Port (default 8080).")
    parser.add_argument("--poll-seconds", type=cli.bounded(float, 0.05, 86400, "--poll-seconds"), default=30.0,
                        help="How often the alias is re-resolved (default 30).")
    parser.add_argument("--capture-dir", metavar="PATH|URI", help="Write every prediction here (Parquet by date/hour).")
    parser.add_argument("--capture-sample", type=cli.bounded(float, 1e-9, 1, "--capture-sample"), default=1.0,
                        help="Share of requests captured (default 1.0).")
    parser.add_argument("--capture-exclude", default="", metavar="COL,COL",
                        help="Input columns never stored (personal data).")
    parser.add_argument("--capture-queue", type=cli.bounded(int, 1, 10_000_000, "--capture-queue"), default=10_000,
                        help="Records waiting to be written before new ones are dropped (default 10000).")
    parser.add_argument("--shadow-alias", help="Also score a sample of requests with this alias (e.g. challenger).")
    parser.add_argument("--shadow-fraction", type=cli.bounded(float, 0, 1, "--shadow-fraction"), default=0.0,
                        help="Share of requests the shadow scores, off the request path (default 0).")
    return parser


def call(args: Any) -> Any:
    import logging
    import sys

    from model_lifecycle.api.serve import ServeRequest, prepare, run

    stack = prepare(ServeRequest(
        args.model, args.alias, args.host, args.port, args.poll_seconds, args.capture_dir, args.capture_sample,
        tuple(c.strip() for c in args.capture_exclude.split(",") if c.strip()), args.capture_queue,
        args.shadow_alias, args.shadow_fraction, args.tracking_uri, args.version,
    ))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve %(levelname)s %(message)s")
    print(f"serving {args.model}@{stack.follower.alias} v{stack.follower.current.version} on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    run(stack)
    return {"command": "serve", "model": args.model}


def render(result: dict[str, Any]) -> None:
    pass


main = cli.command(build_parser, call, render)
