"""End-to-end demo: train two models and take them from registration to production and back.

Starts a local MLflow server on an embedded sqlite store under .demo/ (or uses the server named by
--tracking-uri / MLFLOW_TRACKING_URI), then runs every step script exactly as a user would:
train, register, stage, promote after a local approval, promote the second, retention, rollback,
and prints the versions, aliases and audit history. Safe to run again: each run adds two versions.
"""

from __future__ import annotations

import getpass
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence


from model_lifecycle.edges import common as cli
from model_lifecycle.errors import ToolkitError

EXAMPLES_DIR = Path(__file__).resolve().parent / "demo_files"  # the demo's policy and model card

EXAMPLES = """\
  python scripts/demo.py
  MLFLOW_TRACKING_URI=http://mlflow.internal:5000 python scripts/demo.py --model demo-classifier
"""


def build_parser() -> cli.ArgumentParser:
    parser = cli.make_parser("demo.py", __doc__.splitlines()[0], EXAMPLES)
    parser.add_argument("--model", default="demo-classifier", help="Registered model name (default: demo-classifier).")
    parser.add_argument("--demo-dir", default=".demo", help="Where the local server keeps its store.")
    parser.add_argument("--interactive", action="store_true", help="Ask for the production approval at the prompt.")
    return parser


class StepFailed(ToolkitError):
    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"demo step failed with exit {code}: {command}")
        self.exit_code = code


def step(console: Any, module: Any, argv: list[str]) -> dict[str, Any]:
    """Run one step script in-process, as its command line, and show its human output."""
    script = module.__name__.rsplit(".", 1)[-1]
    console.print(f"[dim]$ python scripts/{script}.py {shlex.join(argv)}[/]")
    code, payload = cli.call_step(module, argv)
    if code != 0:
        raise StepFailed(f"scripts/{script}.py {shlex.join(argv)}: {payload.get('error', '')}", code)
    if script == "model_card" and payload.get("command") == "diff":
        console.print(payload["markdown"])
    else:
        module.render(payload)
    return payload


def approve(console: Any, interactive: bool, version: str) -> tuple[str, str]:
    user = getpass.getuser()
    if interactive and sys.stdin.isatty():
        answer = console.input(f"Approve promotion of v{version} to production? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise StepFailed("approval declined at the prompt", 1)
        return user, "approved at the demo prompt"
    return user, "approved locally by the demo (non-interactive)"


def run_demo(args: Any, tracking_uri: str) -> dict[str, Any]:
    from rich.rule import Rule

    from model_lifecycle.edges.commands import archive
    from model_lifecycle.edges.commands import compare_baseline
    from model_lifecycle.edges.commands import model_card
    from model_lifecycle.edges.commands import register
    from model_lifecycle.edges.commands import rollback
    from model_lifecycle.edges.commands import status
    from model_lifecycle.edges.commands import train
    from model_lifecycle.edges.commands import transition

    console = cli.console()
    uri = ["--tracking-uri", tracking_uri]
    model = ["--model", args.model]
    with tempfile.TemporaryDirectory(prefix="demo-") as out:
        console.print(Rule("1. train two models"))
        first = step(console, train, [*uri, "--model-type", "gradient_boosting", "--n-estimators", "20",
                                      "--output-dir", out, "--run-name", "demo-gbm"])
        second = step(console, train, [*uri, "--model-type", "logistic", "--C", "0.05", "--output-dir", out,
                                       "--run-name", "demo-logistic"])
        gate_files = ["--policy", str(EXAMPLES_DIR / "demo-policy.yml"), "--holdout", second["holdout_path"],
                      "--output", str(Path(out) / "verdict.json"), "--report", str(Path(out) / "report.md")]

        console.print(Rule("2. register both"))
        v1 = step(console, register, [*uri, *model, "--model-uri", first["model_uri"]])["version"]
        v2 = step(console, register, [*uri, *model, "--model-uri", second["model_uri"]])["version"]
        champion = step(console, status, [*uri, *model])["champion"] or "none"

        for version, previous, why in ((v1, champion, "first production model"),
                                       (v2, v1, "logistic regression replaces gradient boosting")):
            console.print(Rule(f"gate, stage, model card, approval and promotion of v{version}"))
            step(console, compare_baseline, [*uri, *model, "--candidate", version, *gate_files, "--stage"])
            step(console, model_card, ["build", *uri, *model, "--version", version,
                                       "--card", str(EXAMPLES_DIR / "demo-model-card.yml")])
            if previous != "none":
                step(console, model_card, ["diff", *uri, *model, "--version", version,
                                           "--output", str(Path(out) / "card-diff.md")])
            approver, comment = approve(console, args.interactive, version)
            step(console, transition, [
                *uri, *model, "--version", version, "--to", "production", "--expect-champion", previous,
                "--approver", approver, "--approval-source", "local", "--approval-comment", comment,
                "--reason", f"demo: {why}",
            ])

    console.print(Rule("retention (keeps the champion and the previous champion)"))
    step(console, archive, [*uri, *model, "--keep-last", "2", "--older-than", "0", "--dry-run"])
    step(console, archive, [*uri, *model, "--keep-last", "2", "--older-than", "0", "--reason", "demo retention"])

    console.print(Rule(f"roll back to v{v1}"))
    step(console, rollback, [*uri, *model, "--reason", "demo: pretend v2 misbehaves in production"])

    console.print(Rule("where things stand"))
    final = step(console, status, [*uri, *model, "--audit"])
    _check_loads(console, tracking_uri, args.model, v1)
    return {"ok": True, "model": args.model, "versions": [v1, v2], "champion": final["champion"]}


def _check_loads(console: Any, tracking_uri: str, name: str, expected: str) -> None:
    """Load models:/<name>@champion the way a serving job would, and predict one row."""
    import mlflow
    import pandas as pd

    from model_lifecycle.edges.commands.train import SLICE_COLUMN, TARGET, load_data

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    _, holdout = load_data(42, 0.3)
    prediction = model.predict(holdout.drop(columns=[TARGET, SLICE_COLUMN]).head(1))
    console.print(f"models:/{name}@champion (v{expected}) loads and predicts: {list(pd.Series(prediction).tolist())}")


def _run(args: Any) -> dict[str, Any]:
    from model_lifecycle.edges import local_server

    if args.tracking_uri:
        return run_demo(args, args.tracking_uri)
    root = Path(args.demo_dir)
    console = cli.console()
    console.print(f"Starting a local MLflow server on {root / 'mlflow.db'} ...")
    with local_server.start(root) as server:
        result = run_demo(args, server.uri)
    console.print(
        "\nOpen the MLflow UI on this store with:\n"
        f"  {shlex.quote(local_server.mlflow_executable())} server --backend-store-uri "
        f"sqlite:///{root.resolve() / 'mlflow.db'} --artifacts-destination {root.resolve() / 'artifacts'} --port 5000\n"
        "then browse http://127.0.0.1:5000 (Models -> " + args.model + ")."
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args), json_output=args.json, render=lambda r: None)

