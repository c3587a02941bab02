"""End-to-end demo: train two models and take them from registration to production and back.

Starts a local MLflow server on an embedded sqlite store under .demo/ (or uses the server named by
--tracking-uri / MLFLOW_TRACKING_URI), then runs every step script exactly as a user would:
train, register, stage, promote after a local approval, promote the second, retention, a drifted
production window that monitoring answers with an automatic rollback, and prints the versions,
aliases and audit history. Safe to run again: each run adds two versions.
"""

from __future__ import annotations

import getpass
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from model_lifecycle.edges import common as cli
from model_lifecycle.errors import Refused

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


def show(console: Any, what: str, result: Any, render: Any) -> Any:
    """Show one step's result with the same rendering as its command."""
    console.print(f"[dim]» {what}[/]")
    payload = cli.as_payload(result)
    if payload.get("command") == "diff":
        console.print(payload["markdown"])
    else:
        render(payload)
    return result


def approve(console: Any, interactive: bool, version: str) -> tuple[str, str]:
    user = getpass.getuser()
    if interactive and sys.stdin.isatty():
        answer = console.input(f"Approve promotion of v{version} to production? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise Refused("approval declined at the prompt")
        return user, "approved at the demo prompt"
    return user, "approved locally by the demo (non-interactive)"


def run_demo(args: Any, tracking_uri: str) -> dict[str, Any]:
    """Every step through the same API the command line and the action call."""
    from rich.rule import Rule

    from model_lifecycle.api import cards, gate, lifecycle, monitor, retention, status, train
    from model_lifecycle.edges.commands import archive as archive_cmd
    from model_lifecycle.edges.commands import compare_baseline as compare_cmd
    from model_lifecycle.edges.commands import model_card as card_cmd
    from model_lifecycle.edges.commands import monitor as monitor_cmd
    from model_lifecycle.edges.commands import register as register_cmd
    from model_lifecycle.edges.commands import status as status_cmd
    from model_lifecycle.edges.commands import train as train_cmd
    from model_lifecycle.edges.commands import transition as transition_cmd

    console = cli.console()
    at = {"tracking_uri": tracking_uri}
    name = args.model
    traffic = None
    with tempfile.TemporaryDirectory(prefix="demo-") as out:
        console.print(Rule("1. train two models"))
        first = show(console, "train gradient boosting", train.train(train.TrainRequest(
            "gradient_boosting", n_estimators=20, output_dir=out, run_name="demo-gbm", **at)), train_cmd.render)
        second = show(console, "train logistic regression", train.train(train.TrainRequest(
            "logistic", C=0.05, output_dir=out, run_name="demo-logistic", **at)), train_cmd.render)

        holdout_copy = Path(args.demo_dir) / "holdout.csv"  # for the monitoring window, after this folder is gone
        holdout_copy.parent.mkdir(parents=True, exist_ok=True)
        holdout_copy.write_bytes(Path(second.holdout_path).read_bytes())

        console.print(Rule("2. register both"))
        v1 = show(console, "register", lifecycle.register(lifecycle.RegisterRequest(name, first.model_uri, **at)),
                  register_cmd.render).version
        v2 = show(console, "register", lifecycle.register(lifecycle.RegisterRequest(name, second.model_uri, **at)),
                  register_cmd.render).version
        champion = status.status(status.StatusRequest(name, **at)).champion or "none"

        for version, previous, why in ((v1, champion, "first production model"),
                                       (v2, v1, "logistic regression replaces gradient boosting")):
            console.print(Rule(f"gate, stage, model card, approval and promotion of v{version}"))
            show(console, f"compare v{version} with the champion and stage it", gate.compare(gate.CompareRequest(
                name, version, str(EXAMPLES_DIR / "demo-policy.yml"), holdout=second.holdout_path,
                output=str(Path(out) / "verdict.json"), report=str(Path(out) / "report.md"), stage=True, **at)),
                compare_cmd.render)
            card = cards.CardRequest(name, version, card=str(EXAMPLES_DIR / "demo-model-card.yml"),
                                     output=str(Path(out) / "card-diff.md"), **at)
            show(console, "build the model card", cards.build_card(card), card_cmd.render)
            if previous != "none":
                show(console, "the card against the champion's", cards.diff_card(card), card_cmd.render)
            approver, comment = approve(console, args.interactive, version)
            show(console, f"promote v{version} (expecting the champion to be {previous})", lifecycle.promote(
                lifecycle.PromoteRequest(name, version, expect_champion=previous, reason=f"demo: {why}",
                                         approval=lifecycle.Approval(approver, "local", comment), **at)),
                transition_cmd.render)
            if traffic is None:
                console.print(Rule("serve @champion and send it traffic through the next promotion and the rollback"))
                traffic = Traffic(tracking_uri, name, Path(args.demo_dir) / "capture", second.holdout_path).start()
                console.print(f"[dim]» serving {name}@champion on {traffic.url} (capture: {traffic.capture})[/]")

    console.print(Rule("retention (the previous champion stays until the champion is stable)"))
    for dry_run in (True, False):
        show(console, "retention" + (" (dry run)" if dry_run else ""), retention.apply_retention(
            retention.RetentionRequest(name, 2, 0, dry_run=dry_run, reason="demo retention", stable_days=7,
                                       min_windows=3, **at)), archive_cmd.render)

    console.print(Rule(f"monitor v{v2} in production: a drifted window rolls it back to v{v1}"))
    window, labels = drifted_window(Path(args.demo_dir) / "windows", tracking_uri, name, v2, str(holdout_copy))
    console.print(f"[dim]» a production window of v{v2}: '{SHIFTED_FEATURE}' shifted, the 'large' slice's labels "
                  f"disagree more often ({window})[/]")
    try:
        judged = monitor.monitor(monitor.MonitorRequest(
            name, str(window), str(EXAMPLES_DIR / "demo-policy.yml"), labels=str(labels),
            output=str(Path(args.demo_dir) / "monitoring.json"), report=str(Path(args.demo_dir) / "monitoring.md"),
            **at))
    except Refused as breach:  # a breach exits 1 on the command line; here it is the point of the demo
        judged = breach.result
    show(console, "monitor", judged, monitor_cmd.render)
    if traffic is not None:
        traffic.wait_for(v1)
        traffic.stop()
        console.print(traffic.report())

    console.print(Rule("where things stand"))
    final = show(console, "status", status.status(status.StatusRequest(name, audit=True, **at)), status_cmd.render)
    _check_loads(console, tracking_uri, name, v1)
    served = traffic.summary() if traffic is not None else None
    return {"ok": True, "model": name, "versions": [v1, v2], "champion": final.champion, "traffic": served,
            "monitoring": {"status": judged.status, "action": judged.action, "rolled_back_to": judged.rolled_back_to}}


SHIFTED_FEATURE = "mean_texture"


def drifted_window(folder: Path, tracking_uri: str, name: str, version: str, holdout_path: str) -> tuple[Path, Path]:
    """A production window of the documented shape (what ``serve --capture-dir`` writes) with one
    feature shifted, and late labels in which one slice's predictions are wrong more often."""
    import uuid

    import mlflow
    import numpy as np
    import pandas as pd

    from model_lifecycle.api.train import SLICE_COLUMN, TARGET

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    frame = pd.concat([pd.read_csv(holdout_path)] * 3, ignore_index=True)
    frame[SHIFTED_FEATURE] = frame[SHIFTED_FEATURE] + 2 * frame[SHIFTED_FEATURE].std()
    features = frame.drop(columns=[TARGET, SLICE_COLUMN])
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    window = features.assign(request_id=ids, record=0, model_version=version, timestamp=pd.Timestamp.now(tz="UTC"),
                             prediction=np.asarray(model.predict(features)))
    labels = pd.DataFrame({"request_id": ids, "record": 0, TARGET: frame[TARGET], SLICE_COLUMN: frame[SLICE_COLUMN]})
    large = labels.index[labels[SLICE_COLUMN] == "large"]
    flipped = large[: len(large) * 2 // 5]
    labels.loc[flipped, TARGET] = 1 - labels.loc[flipped, TARGET]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S")
    window.to_parquet(folder / f"window-{stamp}.parquet")
    labels.to_parquet(folder / f"labels-{stamp}.parquet")
    return folder / f"window-{stamp}.parquet", folder / f"labels-{stamp}.parquet"


class Traffic:
    """``serve`` following @champion, and a client that keeps scoring hold-out rows meanwhile."""

    def __init__(self, tracking_uri: str, name: str, capture: Path, holdout_path: str) -> None:
        import pandas as pd

        from model_lifecycle.api.train import SLICE_COLUMN, TARGET
        from model_lifecycle.edges.local_server import free_port

        self.port, self.capture = free_port(), capture.resolve()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rows = pd.read_csv(holdout_path).drop(columns=[TARGET, SLICE_COLUMN])
        self.argv = [sys.executable, "-m", "model_lifecycle", "serve", "--tracking-uri", tracking_uri, "--model", name,
                     "--port", str(self.port), "--poll-seconds", "0.5", "--capture-dir", str(self.capture)]
        self.answers: list[tuple[int, str]] = []
        self.stopped = __import__("threading").Event()

    def start(self) -> "Traffic":
        import subprocess
        import threading
        import time
        import urllib.request

        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()
        return self

    def _send(self) -> None:
        import json
        import urllib.error
        import urllib.request

        i = 0
        while not self.stopped.is_set():
            rows = self.rows.iloc[[i % len(self.rows)]]
            body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
            request = urllib.request.Request(f"{self.url}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    self.answers.append((answer.status, answer.headers.get("X-Model-Version", "?")))
            except (urllib.error.URLError, OSError) as error:
                self.answers.append((getattr(error, "code", 0), "?"))
            i += 1

    def wait_for(self, version: str, seconds: float = 30) -> None:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not any(v == version for _, v in self.answers[-5:]):
            time.sleep(0.2)
        time.sleep(1)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(15)
        self.process.terminate()  # SIGTERM: the capture queue is flushed
        self.process.wait(30)

    def summary(self) -> dict[str, Any]:
        order: list[str] = []
        for _, version in self.answers:
            if version != "?" and (not order or order[-1] != version):
                order.append(version)
        return {"requests": len(self.answers), "failed": sum(1 for code, _ in self.answers if code != 200),
                "versions_served": order, "capture": str(self.capture)}

    def report(self) -> str:
        done = self.summary()
        files = sorted(self.capture.rglob("*.parquet"))
        return (f"{done['requests']} requests during the promotion and the rollback, {done['failed']} failed; "
                f"X-Model-Version went {' -> '.join('v' + v for v in done['versions_served'])}\n"
                f"captured records: {len(files)} Parquet files under {self.capture} "
                f"(date=/hour= partitions; read them with pyarrow.dataset or pandas.read_parquet)")


def _check_loads(console: Any, tracking_uri: str, name: str, expected: str) -> None:
    """Load models:/<name>@champion the way a serving job would, and predict one row."""
    import mlflow
    import pandas as pd

    from model_lifecycle.api.train import SLICE_COLUMN, TARGET, load_data

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    _, holdout = load_data(42, 0.3)
    prediction = model.predict(holdout.drop(columns=[TARGET, SLICE_COLUMN]).head(1))
    console.print(f"models:/{name}@champion (v{expected}) loads and predicts: {list(pd.Series(prediction).tolist())}")


def _run(args: Any) -> dict[str, Any]:
    """Use the given server, or start a local one on sqlite under --demo-dir for the length of the demo."""
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


main = cli.command(build_parser, _run)
