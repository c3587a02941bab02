"""Benchmark of ``serve``: does following an alias and capturing every prediction cost throughput?

``serve`` puts an ASGI app in front of MLflow's own scoring app (one per loaded version): it reads
the current version per request, adds ``X-Model-Version``, counts metrics and hands every answer to
a capture queue that a writer thread turns into Parquet. Measured against the plain
``mlflow models serve -m models:/<name>/1 --env-manager local`` on the same model (both are one
uvicorn worker on asyncio + h11), in the same run:

1. Throughput and latency. One load generator (this script in a process of its own, ``--load``:
   N threads, each a keep-alive ``http.client`` connection sending single-row
   ``{"dataframe_split": ...}`` POSTs to ``/invocations``) for D seconds against (a) ``serve`` with
   ``--capture-dir`` on (its default ``--poll-seconds``) and (b) ``mlflow models serve``;
   ``--rounds`` rounds, the order swapped every round, after a warm-up of each. Reported: requests/s
   and p50/p99, and serve/mlflow (goals: throughput >= 0.9x, p99 <= 1.2x).
2. Alias switches under load. A second ``serve`` (``--poll-seconds 0.2``) under the same load while
   @champion is moved v1 -> v2 -> v1 ... ``--switches`` times (``lifecycle.promote(force=True)``),
   each followed by ``POST /-/reload``. Reported: non-200 answers (goal 0), the distinct
   ``X-Model-Version`` values seen, and stale answers (a request started after the reload answered,
   and before the next promotion began, served by the other version; goal 0).
3. Capture completeness. Each ``serve`` is stopped with SIGTERM (the capture queue is flushed on the
   way out); its Parquet files are read with ``pyarrow.dataset`` and matched to the request ids the
   load generator sent (``X-Request-Id``): records written / rows answered 200 (goal 1.0 below the
   queue limit), ids missing or written twice, records whose ``model_version`` differs from the
   ``X-Model-Version`` the client got, and the capture stats of the last ``/health``.

Everything runs on loopback against a throw-away ``mlflow server`` on sqlite in a temp dir, with
two small logistic regressions registered as v1 and v2. Every process started here runs in its own
process group and is killed at the end, also on Ctrl-C, SIGTERM or error.

    python bench/bench_serve.py [--clients 8] [--seconds 10] [--switches 20] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Sequence

# Standard library only at the top: the load generator (``--load``) is this file in its own
# process and must start fast and light; the toolkit, MLflow and pandas load in the orchestrator.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
MODEL = "bench-serve"
TARGET_THROUGHPUT = 0.9  # serve / mlflow requests per second, at least
TARGET_P99 = 1.2  # serve / mlflow p99, at most
PAYLOADS = 64  # distinct hold-out rows the load generator cycles through
START_TIMEOUT_S = 120
_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- the load generator (its own process: ``--load PORT``) ------------------------------------------


def load_main(args: argparse.Namespace) -> int:
    """Send single-row POSTs from ``--clients`` threads; print every request as JSON on stdout.

    Stops sending after ``--warmup`` + ``--seconds``, or, with ``--until-eof``, when stdin closes
    (``--seconds`` then bounds the run). Each sample: [request id, start (time.monotonic, the
    same clock as the orchestrator's), seconds, status (0: connection error), X-Model-Version].
    """
    bodies = [body.encode() for body in json.loads(Path(args.payloads).read_text())]
    stop = threading.Event()
    stopped_at: list[float] = []
    started = time.monotonic()
    stop_at = started + args.warmup + args.seconds
    samples: list[list[Any]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        mine: list[list[Any]] = []
        connection = http.client.HTTPConnection("127.0.0.1", args.load, timeout=30)
        sequence = 0
        while not stop.is_set() and time.monotonic() < stop_at:
            request_id = f"{args.tag}-{number}-{sequence}"
            body = bodies[(number * 7919 + sequence) % len(bodies)]
            sequence += 1
            begin = time.monotonic()
            try:
                connection.request("POST", "/invocations", body, {
                    "Content-Type": "application/json", "X-Request-Id": request_id})
                answer = connection.getresponse()
                text = answer.read()
                status, version = answer.status, answer.getheader("X-Model-Version") or ""
                if status != 200 and len(failures) < 5:
                    failures.append(f"{status}: {text[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                status, version = 0, ""
                if len(failures) < 5:
                    failures.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", args.load, timeout=30)
                time.sleep(0.01)
            mine.append([request_id, begin, time.monotonic() - begin, status, version])
        connection.close()
        with lock:
            samples.extend(mine)

    if args.until_eof:
        def watch_stdin() -> None:
            sys.stdin.buffer.read()
            stopped_at.append(time.monotonic())
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stopped = stopped_at[0] if stopped_at else min(time.monotonic(), stop_at)
    json.dump({"started": started, "warm_from": started + args.warmup, "stopped": stopped,
               "samples": samples, "failures": failures}, sys.stdout)
    return 0


# --- processes -------------------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM between starting a process and registering its cleanup."""
    caught: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise KeyboardInterrupt


def stop_group(process: subprocess.Popen, timeout: float = 30) -> int | None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left; the leader's exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # helpers that outlived the leader
    return process.returncode


def spawn(stack: contextlib.ExitStack, argv: Sequence[str], log_path: Path | None, env: dict[str, str],
          **popen: Any) -> subprocess.Popen:
    """Start a process in its own session; its group is stopped when ``stack`` closes."""
    with deferred_interrupt():
        output = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            process = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True, stdout=popen.pop(
                "stdout", output), stderr=subprocess.STDOUT if log_path else None, **popen)
        finally:
            if log_path:
                output.close()
        stack.callback(stop_group, process)
    return process


def wait_http(process: subprocess.Popen, url: str, log_path: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} never answered: the process exited {process.returncode}\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s\n{tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def get_json(url: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def child_env(tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_REGISTRY_URI", "LIFECYCLE_FAILPOINT")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PYTHONUNBUFFERED"] = "1"
    # As if the venv were activated: ``mlflow models serve`` runs ``uvicorn`` found on PATH.
    env["PATH"] = os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "")])
    return env


class Server:
    """One model server under test: its process, port and log."""

    def __init__(self, label: str, port: int, process: subprocess.Popen, log_path: Path,
                 ready_path: str, capture: Path | None = None) -> None:
        self.label, self.port, self.process, self.log_path = label, port, process, log_path
        self.ready_path, self.capture = ready_path, capture

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> "Server":
        wait_http(self.process, self.url + self.ready_path, self.log_path)
        return self


def start_serve(stack: contextlib.ExitStack, root: Path, uri: str, label: str, poll_seconds: float | None) -> Server:
    from model_lifecycle.edges.local_server import free_port

    port, capture, log_path = free_port(), root / f"capture-{label}", root / f"serve-{label}.log"
    argv = [PYTHON, "scripts/serve.py", "--tracking-uri", uri, "--model", MODEL, "--alias", "champion",
            "--port", str(port), "--capture-dir", str(capture)]
    if poll_seconds is not None:
        argv += ["--poll-seconds", str(poll_seconds)]
    return Server(f"serve ({label})", port, spawn(stack, argv, log_path, child_env(uri)), log_path, "/health", capture)


def start_mlflow_serve(stack: contextlib.ExitStack, root: Path, uri: str) -> Server:
    from model_lifecycle.edges.local_server import free_port, mlflow_executable

    port, log_path = free_port(), root / "mlflow-models-serve.log"
    argv = [mlflow_executable(), "models", "serve", "-m", f"models:/{MODEL}/1", "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(port)]
    return Server("mlflow models serve", port, spawn(stack, argv, log_path, child_env(uri)), log_path, "/ping")


# --- load ------------------------------------------------------------------------------------------


class Load:
    """A running load generator process; ``finish()`` stops it (if open-ended) and returns its samples."""

    def __init__(self, stack: contextlib.ExitStack, server: Server, args: argparse.Namespace, payloads: Path,
                 tag: str, seconds: float, until_eof: bool = False) -> None:
        argv = [PYTHON, str(Path(__file__).resolve()), "--load", str(server.port), "--payloads", str(payloads),
                "--clients", str(args.clients), "--seconds", str(seconds), "--warmup", str(args.warmup),
                "--tag", tag] + (["--until-eof"] if until_eof else [])
        self.process = spawn(stack, argv, None, dict(os.environ), stdout=subprocess.PIPE,
                             stdin=subprocess.PIPE if until_eof else subprocess.DEVNULL)
        self.until_eof = until_eof
        self.timeout = seconds + args.warmup + 60

    def finish(self) -> dict[str, Any]:
        output, _ = self.process.communicate(timeout=self.timeout)  # closes stdin: an open-ended run stops
        if self.process.returncode != 0:
            raise RuntimeError(f"the load generator exited {self.process.returncode}")
        return json.loads(output)


def measured(run: dict[str, Any]) -> tuple[list[list[Any]], float]:
    """Requests that completed between the end of the warm-up and the stop, and that window's length."""
    start, stop = run["warm_from"], run["stopped"]
    return [s for s in run["samples"] if start <= s[1] + s[2] <= stop], max(stop - start, 1e-9)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    pooled: list[list[Any]] = []
    window = 0.0
    per_round = []
    for run in runs:
        done, seconds = measured(run)
        pooled += done
        window += seconds
        per_round.append(len(done) / seconds)
    latencies = [s[2] for s in pooled]
    every = [s for run in runs for s in run["samples"]]
    return {
        "requests": len(pooled), "seconds": window, "rps": len(pooled) / window if window else 0.0,
        "rps_per_round": per_round,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "non_200": sum(1 for s in every if s[3] != 200), "sent": len(every),
        "failures": [f for run in runs for f in run["failures"]][:5],
    }


def ok_versions(runs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """request id -> X-Model-Version of every request answered 200 (what the capture must hold)."""
    return {s[0]: s[4] for run in runs for s in run["samples"] if s[3] == 200}


# --- setup -----------------------------------------------------------------------------------------


def register_two_versions(uri: str, root: Path) -> Path:
    """Train two logistic regressions, register them as v1 and v2, @champion -> v1; the payload file."""
    import pandas as pd

    from model_lifecycle.api import lifecycle, train

    holdout = None
    for number, c in ((1, 1.0), (2, 0.1)):
        log(f"training and registering v{number} ...")
        trained = train.train(train.TrainRequest("logistic", C=c, output_dir=str(root / f"train-{number}"),
                                                 experiment="bench-serve", run_name=f"bench-v{number}",
                                                 tracking_uri=uri))
        registered = lifecycle.register(lifecycle.RegisterRequest(MODEL, trained.model_uri, reason="bench",
                                                                  tracking_uri=uri))
        if registered.version != str(number):
            raise RuntimeError(f"expected v{number}, the registry made v{registered.version}")
        holdout = trained.holdout_path
    promote(uri, "1")
    rows = pd.read_csv(holdout).drop(columns=[train.TARGET, train.SLICE_COLUMN]).head(PAYLOADS)
    bodies = [json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": [row]}})
              for row in rows.astype(float).values.tolist()]
    payloads = root / "payloads.json"
    payloads.write_text(json.dumps(bodies))
    return payloads


def promote(uri: str, version: str) -> None:
    from model_lifecycle.api import lifecycle

    lifecycle.promote(lifecycle.PromoteRequest(MODEL, version, force=True, skip_card_check=True, reason="bench",
                                               tracking_uri=uri))


def same_predictions(servers: Sequence[Server], payloads: Path) -> tuple[bool, dict[str, str]]:
    """One request to each server: the same model must answer the same. Returns the ids sent 200 to serve."""
    body = json.loads(payloads.read_text())[0].encode()
    answers, sent = [], {}
    for number, server in enumerate(servers):
        request_id = f"check-{number}"
        request = urllib.request.Request(server.url + "/invocations", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Request-Id": request_id})
        with urllib.request.urlopen(request, timeout=30) as answer:
            answers.append(json.loads(answer.read()))
            version = answer.headers.get("X-Model-Version")
            if version:
                sent[request_id] = version
    return all(a == answers[0] for a in answers), sent


# --- 1. throughput ---------------------------------------------------------------------------------


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in a process group (Linux /proc; 0.0 elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # state, ppid, pgrp, ...; utime and stime are the 12th and 13th
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def drain_capture(server: Server, timeout: float = 30) -> None:
    """Wait until serve's capture writer has caught up, so its work is neither lost from this run's
    CPU nor done in the background of the next run (of either server)."""
    if server.capture is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = get_json(server.url + "/health").get("capture", {})
        done = c.get("written", 0) + c.get("parse_errors", 0) + c.get("dropped_write_error", 0)
        if done >= c.get("queued", 0):
            return
        time.sleep(0.2)


def throughput(stack: contextlib.ExitStack, serve: Server, baseline: Server, args: argparse.Namespace,
               payloads: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Alternate the targets round by round; the serve runs are also returned (for the capture check).

    Besides requests/s and latency, the CPU the server's process group spent per request sent
    (capture writer included: the run ends once it has caught up): the figure least disturbed by
    other work on the machine."""
    runs: dict[str, list[dict[str, Any]]] = {"serve": [], "mlflow": []}
    cpu: dict[str, float] = {"serve": 0.0, "mlflow": 0.0}
    targets = [("serve", serve), ("mlflow", baseline)]
    warm = []
    for key, server in targets:  # untimed: first requests import and compile the scoring path
        log(f"warm-up: {server.label}, 3 s ...")
        warm_run = Load(stack, server, args, payloads, f"warm-{key}", 3.0).finish()
        drain_capture(server)
        if key == "serve":
            warm.append(warm_run)
    for round_number in range(args.rounds):
        for key, server in targets if round_number % 2 == 0 else targets[::-1]:
            log(f"round {round_number + 1}/{args.rounds}: {server.label}, {args.clients} clients x {args.seconds:g} s ...")
            before = group_cpu_seconds(server.process.pid)
            runs[key].append(Load(stack, server, args, payloads, f"r{round_number}-{key}", args.seconds).finish())
            drain_capture(server)
            cpu[key] += group_cpu_seconds(server.process.pid) - before
    results: dict[str, Any] = {key: summarize_runs(value) for key, value in runs.items()}
    for key in runs:
        results[key]["cpu_ms_per_request"] = cpu[key] * 1000 / max(results[key]["sent"], 1)
    results["ratio_rps"] = ratio(results["serve"]["rps"], results["mlflow"]["rps"])
    results["ratio_p99"] = ratio(results["serve"]["p99_ms"], results["mlflow"]["p99_ms"])
    results["ratio_p50"] = ratio(results["serve"]["p50_ms"], results["mlflow"]["p50_ms"])
    results["ratio_cpu"] = ratio(results["serve"]["cpu_ms_per_request"], results["mlflow"]["cpu_ms_per_request"])
    results["met_rps"] = results["ratio_rps"] >= TARGET_THROUGHPUT
    results["met_p99"] = results["ratio_p99"] <= TARGET_P99
    return results, warm + runs["serve"]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


# --- 2. switches -----------------------------------------------------------------------------------


def switches(stack: contextlib.ExitStack, serve: Server, uri: str, args: argparse.Namespace,
             payloads: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move @champion back and forth under load; POST /-/reload after each move."""
    bound = args.switches * 10 + 60  # the load is open-ended: it stops when the switches are done
    load = Load(stack, serve, args, payloads, "switch", bound, until_eof=True)
    events = []
    try:
        time.sleep(args.warmup + 1.0)
        for number in range(args.switches):
            target = "2" if number % 2 == 0 else "1"
            began = time.monotonic()
            promote(uri, target)
            promoted = time.monotonic()
            answer = get_json(serve.url + "/-/reload", "POST")
            reloaded = time.monotonic()
            events.append({"target": target, "began": began, "promoted": promoted, "reloaded": reloaded,
                           "answer": answer})
            time.sleep(args.switch_gap)
        time.sleep(1.0)
    finally:
        run = load.finish()
    samples = run["samples"]
    stale = 0
    for number, event in enumerate(events):
        window_end = events[number + 1]["began"] if number + 1 < len(events) else run["stopped"]
        stale += sum(1 for s in samples
                     if s[3] == 200 and event["reloaded"] <= s[1] <= window_end and s[4] != event["target"])
    versions: dict[str, int] = {}
    for s in samples:
        if s[3] == 200:
            versions[s[4]] = versions.get(s[4], 0) + 1
    latencies = [s[2] for s in samples]
    promote_s = [e["promoted"] - e["began"] for e in events]
    reload_s = [e["reloaded"] - e["promoted"] for e in events]
    return {
        "switches": len(events), "requests": len(samples),
        "non_200": sum(1 for s in samples if s[3] != 200),
        "connection_errors": sum(1 for s in samples if s[3] == 0),
        "versions": dict(sorted(versions.items())), "distinct_versions": len(versions),
        "stale": stale,
        "reload_on_target": sum(1 for e in events if str(e["answer"].get("version")) == e["target"]),
        "reload_changed": sum(1 for e in events if e["answer"].get("changed")),
        "reload_errors": [e["answer"]["error"] for e in events if e["answer"].get("error")][:3],
        "promote_s": {"median": statistics.median(promote_s), "max": max(promote_s)} if events else {},
        "reload_s": {"median": statistics.median(reload_s), "max": max(reload_s)} if events else {},
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "rps": len(samples) / max(run["stopped"] - run["started"], 1e-9),
        "failures": run["failures"],
    }, run


# --- 3. capture ------------------------------------------------------------------------------------


def stop_and_read_capture(serve: Server, answered: dict[str, str]) -> dict[str, Any]:
    """Last /health, SIGTERM, then the Parquet files against the ids answered 200."""
    import pyarrow.dataset as ds

    health = get_json(serve.url + "/health")
    exit_code = stop_group(serve.process)
    files = sorted(serve.capture.rglob("*.parquet")) if serve.capture and serve.capture.exists() else []
    ids: list[str] = []
    versions: list[str] = []
    if files:
        table = ds.dataset(str(serve.capture), format="parquet", partitioning="hive").to_table(
            columns=["request_id", "model_version"])
        ids = [str(v) for v in table.column("request_id").to_pylist()]
        versions = [str(v) for v in table.column("model_version").to_pylist()]
    written = len(ids)
    captured = dict(zip(ids, versions))
    log_text = serve.log_path.read_text(errors="replace") if serve.log_path.exists() else ""
    problems = [line for line in log_text.splitlines()
                if any(word in line for word in ("WARNING", "ERROR", "Traceback", "Exception"))]
    return {
        "requested": len(answered), "written": written,
        "completeness": written / len(answered) if answered else float("nan"),
        "missing": len(set(answered) - set(captured)), "unexpected": len(set(captured) - set(answered)),
        "duplicated": written - len(captured),
        "version_mismatch": sum(1 for rid, v in captured.items() if rid in answered and answered[rid] != v),
        "files": len(files), "health_capture": health.get("capture", {}), "exit_code": exit_code,
        "log_problems": len(problems), "log_problem_samples": problems[:5],
    }


# --- orchestration ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from model_lifecycle.edges import local_server

    report: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "rounds": args.rounds}
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serve-")))
        log("starting mlflow server ...")
        with deferred_interrupt():
            tracking = stack.enter_context(local_server.start(root / "mlflow"))
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints "View run ..." on stdout
            payloads = register_two_versions(tracking.uri, root)
        report["setup_s"] = time.perf_counter() - _STARTED
        log("starting serve (capture on) and mlflow models serve ...")
        serve = start_serve(stack, root, tracking.uri, "throughput", None)
        baseline = start_mlflow_serve(stack, root, tracking.uri)
        serve.wait()
        baseline.wait()
        report["same_predictions"], checked = same_predictions([serve, baseline], payloads)
        report["throughput"], serve_runs = throughput(stack, serve, baseline, args, payloads)
        log("stopping mlflow models serve; SIGTERM to serve, reading its capture ...")
        stop_group(baseline.process)
        report["capture_throughput"] = stop_and_read_capture(serve, {**checked, **ok_versions(serve_runs)})

        log("starting serve --poll-seconds 0.2 ...")
        follower = start_serve(stack, root, tracking.uri, "switches", 0.2).wait()
        log(f"{args.switches} alias switches under load ...")
        report["switches"], switch_run = switches(stack, follower, tracking.uri, args, payloads)
        log("SIGTERM to serve, reading its capture ...")
        report["capture_switches"] = stop_and_read_capture(follower, ok_versions([switch_run]))
        log("stopping the mlflow server ...")
    report["total_s"] = time.perf_counter() - _STARTED
    return report


# --- report ----------------------------------------------------------------------------------------


def render(report: dict[str, Any], out: Any) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    t = report["throughput"]
    line(f"1. Throughput, single-row POST /invocations, {report['clients']} keep-alive clients, "
         f"{report['rounds']} rounds x {report['seconds']:g} s per server (order alternating)")
    line(f"  {'':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} {'non-200':>8}   req/s by round")
    for key, label in (("serve", "serve --capture-dir (poll 30 s)"), ("mlflow", "mlflow models serve")):
        m = t[key]
        rounds = " ".join(f"{r:.0f}" for r in m["rps_per_round"])
        line(f"  {label:<34} {m['rps']:8.1f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {m['cpu_ms_per_request']:11.2f} "
             f"{m['non_200']:8d}   {rounds}")
    line(f"  {'serve / mlflow':<34} {t['ratio_rps']:7.2f}x {t['ratio_p50']:7.2f}x {t['ratio_p99']:7.2f}x "
         f"{t['ratio_cpu']:10.2f}x")
    line("  (CPU ms/req: the server's process group, capture writer included, per request sent)")
    line(f"  goals: throughput >= {TARGET_THROUGHPUT}x -> {'met' if t['met_rps'] else 'MISSED'};  "
         f"p99 <= {TARGET_P99}x -> {'met' if t['met_p99'] else 'MISSED'};  "
         f"same predictions from both: {'yes' if report['same_predictions'] else 'NO'}")
    line()
    s = report["switches"]
    line(f"2. {s['switches']} alias switches v1 <-> v2 under load (serve --poll-seconds 0.2, POST /-/reload after each)")
    line(f"  requests {s['requests']} ({s['rps']:.0f}/s), non-200 {s['non_200']} (goal 0; connection errors "
         f"{s['connection_errors']}), p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.0f} ms")
    seen = ", ".join(f"v{v or '?'}: {n}" for v, n in s["versions"].items())
    line(f"  distinct X-Model-Version seen: {s['distinct_versions']} ({seen})")
    line(f"  stale answers after a reload answered: {s['stale']} (goal 0)")
    line(f"  /-/reload answered the promoted version: {s['reload_on_target']}/{s['switches']} "
         f"(switched by the reload itself: {s['reload_changed']}, the rest by the poll first)")
    if s["switches"]:
        line(f"  promote: median {s['promote_s']['median'] * 1000:.0f} ms, max {s['promote_s']['max'] * 1000:.0f} ms; "
             f"reload: median {s['reload_s']['median'] * 1000:.0f} ms, max {s['reload_s']['max'] * 1000:.0f} ms")
    for error in s["reload_errors"]:
        line(f"  reload error: {error}")
    for failure in s["failures"]:
        line(f"  failed request: {failure}")
    line()
    line("3. Capture completeness (serve stopped with SIGTERM; Parquet read with pyarrow.dataset)")
    a, b = report["capture_throughput"], report["capture_switches"]
    line(f"  {'':<44} {'throughput':>12} {'switches':>12}")
    rows = [("rows answered 200", "requested"), ("records written", "written"), ("Parquet files", "files"),
            ("request ids missing", "missing"), ("request ids written twice", "duplicated"),
            ("records not matching a request sent", "unexpected"),
            ("model_version != X-Model-Version", "version_mismatch")]
    for label, key in rows:
        line(f"  {label:<44} {a[key]:12d} {b[key]:12d}")
    line(f"  {'written / requested (goal 1.0)':<44} {a['completeness']:12.4f} {b['completeness']:12.4f}")
    for key in ("queued", "written", "dropped_queue_full", "dropped_write_error", "parse_errors"):
        line(f"  {'last /health capture.' + key:<44} {a['health_capture'].get(key, '-'):>12} "
             f"{b['health_capture'].get(key, '-'):>12}")
    # uvicorn re-raises the SIGTERM it caught once its shutdown (and the capture flush) is done: -15.
    line(f"  {'exit status after SIGTERM (-15: re-raised)':<44} {a['exit_code']!s:>12} {b['exit_code']!s:>12}")
    line(f"  {'warning/error lines in serve log':<44} {a['log_problems']:12d} {b['log_problems']:12d}")
    for sample in (a["log_problem_samples"] + b["log_problem_samples"])[:5]:
        line(f"    {sample[:160]}")
    line()
    line(f"setup {report['setup_s']:.1f} s, total {report['total_s']:.1f} s")


def check(report: dict[str, Any]) -> list[str]:
    """Hard requirements (the ratio goals are reported, not enforced: timings vary by machine)."""
    failures = []
    s = report["switches"]
    if s["non_200"]:
        failures.append(f"{s['non_200']} requests failed during the alias switches")
    if s["stale"]:
        failures.append(f"{s['stale']} answers came from the old version after /-/reload answered")
    for key in ("capture_throughput", "capture_switches"):
        c = report[key]
        drops = sum(c["health_capture"].get(k, 0) for k in ("dropped_queue_full", "dropped_write_error", "parse_errors"))
        if (c["missing"] or c["duplicated"] or c["version_mismatch"]) and not drops:
            failures.append(f"{key}: records lost or wrong below the queue limit: {c['missing']} missing, "
                            f"{c['duplicated']} duplicated, {c['version_mismatch']} with the wrong version")
    return failures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_serve.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--clients", type=int, default=8, help="Concurrent keep-alive clients of the load generator (default 8).")
    add("--seconds", type=float, default=10.0, help="Measured seconds per server and round (default 10).")
    add("--rounds", type=int, default=2, help="Throughput rounds, the order swapped each round (default 2).")
    add("--switches", type=int, default=20, help="Alias switches under load (default 20).")
    add("--switch-gap", type=float, default=0.3, help="Pause after each switch, in seconds (default 0.3).")
    add("--warmup", type=float, default=1.0, help="Seconds of each load run not measured (default 1).")
    add("--json", action="store_true", help="Print the figures as JSON on stdout; the table goes to stderr.")
    # The load generator: this file in a process of its own.
    add("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    add("--payloads", help=argparse.SUPPRESS)
    add("--tag", default="load", help=argparse.SUPPRESS)
    add("--until-eof", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.switches < 0 or not args.seconds > 0 or args.warmup < 0:
        parser.error("--clients and --rounds must be at least 1, --switches at least 0, --seconds positive")
    if args.seconds > 600 or args.clients > 256 or args.switches > 500:
        parser.error("keep it bounded: --seconds <= 600, --clients <= 256, --switches <= 500")
    return args


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        return load_main(args)
    sys.path[:0] = [str(REPO)]
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)  # clean up on `kill` as on Ctrl-C
    try:
        report = run(args)
    except KeyboardInterrupt:
        log("interrupted; every process started was stopped and the temp dir removed")
        return 130
    render(report, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    failures = check(report)
    for failure in failures:
        log(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
