"""The command-line edge every step shares: flags, output, and the one place errors are caught.

Nothing here imports MLflow: ``--help`` of every step must stay fast (measured in bench/).
A step's command module only parses argv into the API's request, calls the API, and renders the
result; ``command()`` builds its ``main`` from those three pieces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import traceback
import warnings
from typing import Any, Callable, Sequence

from model_lifecycle import settings
from model_lifecycle.errors import EXIT_BAD_INPUT, EXIT_OK, ServiceError, ToolkitError


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
        default=settings.TRACKING_URI.get(),
        help="MLflow tracking server URI (default: $MLFLOW_TRACKING_URI).",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        help="Print one machine-readable JSON document on stdout; human text goes to stderr.",
    )
    parent.add_argument(
        "--verbose",
        action="store_true",
        help="Also show MLflow's own output (its INFO log lines, run links, progress bars, FutureWarnings).",
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
    parser.add_argument("--model", required=required, metavar="NAME", help="Registered model name.")


def add_alias_flags(parser: argparse.ArgumentParser) -> None:
    """Alias names are configurable so teams with existing conventions keep them."""
    for flag, setting, what in (
        ("--champion-alias", settings.CHAMPION_ALIAS, "Alias that serves production"),
        ("--challenger-alias", settings.CHALLENGER_ALIAS, "Alias of the staged candidate"),
        ("--previous-alias", settings.PREVIOUS_ALIAS,
         "Alias that keeps the previous champion reachable for rollback"),
    ):
        parser.add_argument(flag, default=setting.get(), help=f"{what} (default: {setting.default}, or ${setting.name}).")


def alias_names(args: Any) -> Any:
    """The AliasNames of --champion-alias/--challenger-alias/--previous-alias."""
    from model_lifecycle.core.lifecycle import AliasNames

    return AliasNames(args.champion_alias, args.challenger_alias, args.previous_alias)


def add_actor_flags(parser: argparse.ArgumentParser, reason_required: bool = False) -> None:
    parser.add_argument("--reason", required=reason_required, default=None,
                        help="Why this change is made; recorded in the audit record.")
    parser.add_argument("--actor", default=None, help="Who makes the change (default: $GITHUB_ACTOR, else user@host).")


def in_github_actions() -> bool:
    return settings.in_github_actions()


def _escape_annotation(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def append_step_summary(markdown: str) -> None:
    """Append Markdown to the GitHub job summary when running under Actions (no-op elsewhere)."""
    path = settings.GITHUB_STEP_SUMMARY.get()
    if not path or not markdown:
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


def as_payload(result: Any) -> dict[str, Any]:
    """A result object's JSON document (plain dicts pass through)."""
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


# What MLflow says on its own while a step runs, none of it about the step's outcome: its INFO log
# lines ("Creating a new experiment", "Waiting up to 300 seconds ..."), the run and experiment links
# it prints when a run ends, what ``register_model`` prints, and artifact progress bars (shown once
# tqdm is installed). Each is written whole by one ``write`` call (a print's newline follows alone).
_MLFLOW_CHATTER = re.compile(
    r"^(?:\x1b\[[0-9;]*m)?(?:"
    r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:DEBUG|INFO) (?:mlflow|alembic|huey)\b"
    r"|🏃 View run |🧪 View experiment at: "
    r"|Successfully registered model '|Created version '\d+' of model '"
    r"|Registered model (?:'.*'|\".*\") already exists\. Creating a new version"
    r"|(?:Downloading|Uploading) artifacts:"
    r")"
)


class _WithoutChatter:
    """A text stream that passes everything on except MLflow's chatter (``_MLFLOW_CHATTER``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._open = False  # a dropped write left its line open: its newline (or a bar's redraw) goes too

    def write(self, text: str) -> int:
        if _MLFLOW_CHATTER.match(text.lstrip("\r")) or (self._open and not text.strip()):
            self._open = not text.endswith("\n")
            return len(text)
        self._open = False
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding, fileno: the real stream's
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_mlflow(verbose: bool = False):
    """Keep MLflow's chatter and FutureWarnings out of a step's output, unless ``verbose``.

    Only those: MLflow's warnings and errors, and every line of the toolkit, still show."""
    if verbose:
        yield
        return
    out, err = sys.stdout, sys.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sys.stdout, sys.stderr = _WithoutChatter(out), _WithoutChatter(err)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def execute(action: Callable[[], Any], *, json_output: bool = False,
            verbose: bool = False) -> tuple[int, Any, ToolkitError | None]:
    """Run an API call and map every failure to its exit code: (code, result or None, error or None).

    The one place exceptions are caught, for the command line, the action entry and the demo.
    MLflow's own chatter is left out unless ``verbose`` (or a debug setting) asks for it."""
    settings.bound_mlflow_retries()
    verbose = verbose or bool(settings.DEBUG.get()) or settings.ACTIONS_STEP_DEBUG.get() == "true"
    try:
        with quiet_mlflow(verbose):
            if json_output:  # libraries print progress to stdout; with --json it belongs to the JSON alone
                with contextlib.redirect_stdout(sys.stderr):
                    result = action()
            else:
                result = action()
    except ToolkitError as exc:
        return exc.exit_code, exc.result, exc
    except KeyboardInterrupt:
        error = ToolkitError("interrupted by the user", title="Interrupted")
        error.exit_code = 130
        return 130, None, error
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 3 (or 2)
        if settings.DEBUG.get() or settings.ACTIONS_STEP_DEBUG.get() == "true":
            traceback.print_exc()
        return (mapped := _map_unexpected(exc)).exit_code, None, mapped
    return getattr(result, "exit_code", EXIT_OK), result, None


def run(action: Callable[[], Any], *, json_output: bool, render: Callable[[dict[str, Any]], None] | None = None,
        verbose: bool = False) -> int:
    """Run a step for the command line: print its result (JSON or human) and its error, if any."""
    code, result, error = execute(action, json_output=json_output, verbose=verbose)
    payload = as_payload(result) if result is not None else None
    if payload is not None:
        payload["ok"] = code == EXIT_OK
        if code != EXIT_OK:
            payload["exit_code"] = code
        summary = getattr(result, "markdown_summary", None)
        if summary:
            append_step_summary(summary)
        if json_output:
            print_json(payload)
        elif render is not None:
            render(payload)
    if error is not None:
        report_error(error.title, error.one_line(), error.exit_code, json_output)
        if json_output and payload is None:
            print_json({"ok": False, "exit_code": error.exit_code, "error": error.one_line()})
    return code


def command(
    build_parser: Callable[[], argparse.ArgumentParser],
    call: Callable[[Any], Any],
    render: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[Sequence[str] | None], int]:
    """A step's ``main(argv)``: parse, call the API through ``call(args)``, render; returns the exit code."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = build_parser().parse_args(argv)
        return run(lambda: call(args), json_output=getattr(args, "json", False), render=render,
                   verbose=getattr(args, "verbose", False))

    return main


def _map_unexpected(exc: Exception) -> ToolkitError:
    """Errors that escaped the domain layer: MLflow/network failures become exit 3, others say what."""
    from model_lifecycle.errors import BadInput

    try:
        from model_lifecycle.adapters.registry import translate_mlflow_error

        mapped = translate_mlflow_error(exc)
        if mapped is not None:
            return mapped
    except ImportError:  # pragma: no cover - registry always importable in this package
        pass
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ServiceError(f"an outside service failed: {exc}")
    return BadInput(f"unexpected {type(exc).__name__}: {exc}", hint="set LIFECYCLE_DEBUG=1 for a traceback",
                    title="Unexpected error")


def console():
    """A rich console for human output, at least 120 columns wide even when not on a terminal."""
    import shutil

    from rich.console import Console

    width = max(shutil.get_terminal_size((140, 40)).columns, 120)
    return Console(highlight=False, width=width)


def bounded(kind: type, low: float, high: float, flag: str) -> Callable[[str], Any]:
    """An argparse ``type=`` for a finite number within [low, high]; the usage error names the flag."""
    import math

    def parse(text: str) -> Any:
        try:
            value = kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a {'whole ' if kind is int else ''}number, got {text!r}")
        if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} must be between {low:g} and {high:g}, got {text!r}")
        return value

    return parse


PROGRESS_LINE_SECONDS = 5.0  # without a terminal (CI logs): one progress line at most this often


class Progress:
    """Progress of a long step, as the API reports it (``progress(done, total, what)``): a rich bar on
    a terminal, a line every few seconds in a log, nothing at all when the output is JSON."""

    def __init__(self, json_output: bool = False, stream: Any = None) -> None:
        self.enabled = not json_output
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.task: Any = None
        self.last = 0.0
        self.printed = False

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled or total <= 0:
            return
        import time

        if getattr(self.stream, "isatty", lambda: False)():
            self._bar(done, total, what)
            return
        now = time.monotonic()
        finished = done >= total
        if (now - self.last >= PROGRESS_LINE_SECONDS and not finished) or (finished and self.printed):
            print(f"{what}: {done:,} of {total:,} ({100 * done / total:.0f}%)", file=self.stream, flush=True)
            self.last, self.printed = now, True
        elif self.last == 0.0:
            self.last = now  # the first line comes after PROGRESS_LINE_SECONDS: short steps print none

    def _bar(self, done: int, total: int, what: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        if self.bar is None:
            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                           console=Console(file=self.stream), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)
        self.bar.update(self.task, completed=done, total=total, description=what)
        if done >= total:
            self.bar.stop()
            self.bar = None
