"""The thin command layer every step script shares: flags, output, and the one place errors are caught.

Nothing here imports MLflow: ``--help`` of every step must stay fast (measured in bench/).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from typing import Any, Callable, Sequence

from model_lifecycle.errors import EXIT_BAD_INPUT, EXIT_OK, ServiceError, ToolkitError

# The MLflow client retries a dead or 5xx server for about four minutes by default. A promotion
# step must fail within a bounded time instead, so these apply unless the user set their own.
BOUNDED_MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_mlflow_retries() -> None:
    """Set bounded retry/timeout defaults for the MLflow client, keeping any value the user set."""
    for key, value in BOUNDED_MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors reported like every other bad input (exit 2, ::error:: on Actions)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        report_error("Usage error", f"{self.prog}: {message}", EXIT_BAD_INPUT)
        self.print_usage(sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def shared_flags() -> argparse.ArgumentParser:
    """--tracking-uri and --json, as a parent parser (subcommands take it too)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking server URI (default: $MLFLOW_TRACKING_URI).",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        help="Print one machine-readable JSON document on stdout; human text goes to stderr.",
    )
    return parent


def make_parser(prog: str, description: str, examples: str = "", shared: bool = True) -> ArgumentParser:
    """A parser with the flags every step shares: --tracking-uri and --json."""
    epilog = f"Examples:\n{examples}" if examples else None
    return ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[shared_flags()] if shared else [],
    )


def add_model_flag(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--model",
        required=required,
        metavar="NAME",
        help="Registered model name.",
    )


def add_alias_flags(parser: argparse.ArgumentParser) -> None:
    """Alias names are configurable so teams with existing conventions keep them."""
    parser.add_argument(
        "--champion-alias",
        default=os.environ.get("LIFECYCLE_CHAMPION_ALIAS", "champion"),
        help="Alias that serves production (default: champion, or $LIFECYCLE_CHAMPION_ALIAS).",
    )
    parser.add_argument(
        "--challenger-alias",
        default=os.environ.get("LIFECYCLE_CHALLENGER_ALIAS", "challenger"),
        help="Alias of the staged candidate (default: challenger, or $LIFECYCLE_CHALLENGER_ALIAS).",
    )
    parser.add_argument(
        "--previous-alias",
        default=os.environ.get("LIFECYCLE_PREVIOUS_ALIAS", "previous-champion"),
        help="Alias that keeps the previous champion reachable for rollback "
        "(default: previous-champion, or $LIFECYCLE_PREVIOUS_ALIAS).",
    )


def add_actor_flags(parser: argparse.ArgumentParser, reason_required: bool = False) -> None:
    parser.add_argument(
        "--reason",
        required=reason_required,
        default=None,
        help="Why this change is made; recorded in the audit record.",
    )
    parser.add_argument(
        "--actor",
        default=None,
        help="Who makes the change (default: $GITHUB_ACTOR, else user@host).",
    )


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_annotation(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def append_step_summary(markdown: str) -> None:
    """Append Markdown to the GitHub job summary when running under Actions (no-op elsewhere)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")
    except OSError:
        pass  # The summary is a courtesy; never let it mask the real outcome.


def report_error(title: str, message: str, exit_code: int, json_output: bool = False) -> None:
    """The single exit path for failures: one line on stderr, an annotation and a summary on Actions.

    With --json the annotation goes to stderr (the runner reads workflow commands there too) so
    that stdout stays one JSON document."""
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
    if in_github_actions():
        stream = sys.stderr if json_output or "--json" in sys.argv else sys.stdout
        print(f"::error title={_escape_annotation(title)}::{_escape_annotation(line)}", file=stream)
        append_step_summary(f"### ❌ {title} (exit {exit_code})\n\n{line}")


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def run(
    action: Callable[[], dict[str, Any]],
    *,
    json_output: bool,
    render: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Run a step, print its result (JSON or human) and map every failure to its exit code."""
    bound_mlflow_retries()
    try:
        if json_output:  # libraries print progress to stdout; with --json it belongs to the JSON alone
            with contextlib.redirect_stdout(sys.stderr):
                payload = action()
        else:
            payload = action()
    except ToolkitError as exc:
        report_error(exc.title, exc.one_line(), exc.exit_code, json_output)
        if json_output:
            print_json({"ok": False, "exit_code": exc.exit_code, "error": exc.one_line()})
        return exc.exit_code
    except KeyboardInterrupt:
        report_error("Interrupted", "interrupted by the user", 130)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 3
        mapped = _map_unexpected(exc)
        report_error(mapped.title, mapped.one_line(), mapped.exit_code, json_output)
        if os.environ.get("LIFECYCLE_DEBUG") or os.environ.get("ACTIONS_STEP_DEBUG") == "true":
            traceback.print_exc()
        return mapped.exit_code
    if json_output:
        print_json(payload)
    elif render is not None:
        render(payload)
    return payload.get("exit_code", EXIT_OK) if isinstance(payload, dict) else EXIT_OK


def _map_unexpected(exc: Exception) -> ToolkitError:
    """Errors that escaped the domain layer: MLflow/network failures become exit 3, others say what."""
    from model_lifecycle.errors import BadInput

    try:
        from model_lifecycle.adapters.registry import translate_mlflow_error

        mapped = translate_mlflow_error(exc)
        if mapped is not None:
            return mapped
    except ImportError:  # pragma: no cover - registry always importable in this repo
        pass
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ServiceError(f"an outside service failed: {exc}")
    error = BadInput(f"unexpected {type(exc).__name__}: {exc}", hint="set LIFECYCLE_DEBUG=1 for a traceback")
    error.title = "Unexpected error"
    return error


def console():
    """A rich console for human output, at least 120 columns wide even when not on a terminal."""
    import shutil

    from rich.console import Console

    width = max(shutil.get_terminal_size((140, 40)).columns, 120)
    return Console(highlight=False, width=width)


def call_step(module: Any, argv: Sequence[str]) -> tuple[int, dict[str, Any]]:
    """Run another step's ``main`` in-process with --json: (exit code, its JSON document).

    Used by the demo and the action's entry point; the step reports its own errors (stderr,
    annotations, summary) through its own ``run``."""
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main([*argv, "--json"])
    text = out.getvalue().strip()
    return code, json.loads(text[text.find("{"):]) if "{" in text else {}


def main_guard(main: Callable[[Sequence[str] | None], int]) -> None:
    raise SystemExit(main(sys.argv[1:]))
