"""Benchmark: is the toolkit cheap enough to sit in every CI step and every promotion?

Two costs decide whether a team keeps the toolkit or goes back to a bare ``MlflowClient`` call:

1. Start-up. ``status.py --help`` must not import MLflow (imports are lazy), so a step that only
   parses flags or fails on bad input stays near a bare ``python -c pass``. Measured as whole
   processes against that baseline and against ``python -c "import mlflow"``.
2. A promotion (``transition.py --to production``) on a model with many versions (2,000 by
   default). Its lock, compare-and-set and audit record cost REST calls; the target is to stay
   within 1.5x of a plain script that only moves the alias with ``MlflowClient``, and never to
   page through the model's versions. Measured in the same run, alternating, as whole processes
   and in process; the REST calls are counted per endpoint by a counting reverse proxy
   (``bench/_counting_proxy.py``) put in front of the server.

Everything runs against a real ``mlflow server`` on sqlite in a temp dir, on loopback only; the
server's process group is killed at the end, also on Ctrl-C. Timings go straight to the server;
only the counting runs go through the proxy, so its extra hop does not weigh on either side.

    python bench/bench_lifecycle.py [--versions 2000] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from _counting_proxy import CountingProxy, EndpointStats  # noqa: E402
from model_lifecycle.core import lifecycle  # noqa: E402
from model_lifecycle.edges import local_server  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_STARTED = time.perf_counter()
PYTHON = sys.executable
TARGET_RATIO = 1.5
TOOLKIT_MODEL = "bench-toolkit"  # promoted by the toolkit
PLAIN_MODEL = "bench-plain"  # the same size, its alias moved by the plain script
TINY_MODEL = "bench-tiny"  # one version: what a registry read costs without the versions
# Never read: the server refuses a local path as a version source unless it belongs to a run.
SOURCE = "s3://bench-never-read/model"
NAMES = lifecycle.AliasNames()
SEARCH_ENDPOINT = "model-versions/search"

PLAIN_SCRIPT = '''\
"""The baseline: move the champion alias with a bare MlflowClient, nothing else."""
import sys

from mlflow import MlflowClient

uri, name, version = sys.argv[1:4]
MlflowClient(uri).set_registered_model_alias(name, "champion", version)
'''


# --- measuring -------------------------------------------------------------------------------------


def run_checked(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run a whole process to completion; its wall time in seconds. A failure stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode in (130, -signal.SIGINT):  # Ctrl-C reached the child first
        raise KeyboardInterrupt
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return elapsed


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def child_env(tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_REGISTRY_URI", "LIFECYCLE_FAILPOINT")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


# --- 1. start-up -----------------------------------------------------------------------------------

STARTUP_COMMANDS = {
    "python -c pass": [PYTHON, "-c", "pass"],
    'python -c "import mlflow"': [PYTHON, "-c", "import mlflow"],
    "status.py --help": [PYTHON, "scripts/status.py", "--help"],
}


def heavy_imports_of_help() -> list[str]:
    """Top-level packages of note that ``status.py --help`` imports (``-X importtime``)."""
    heavy = {"mlflow", "pandas", "numpy", "sklearn", "scipy", "sqlalchemy", "requests", "rich", "pyarrow"}
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "scripts/status.py", "--help"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    return sorted(imported & heavy)


def measure_startup(runs: int) -> dict[str, Any]:
    """Median wall time of each command, interleaved round by round, after one warm-up each."""
    samples: dict[str, list[float]] = {label: [] for label in STARTUP_COMMANDS}
    labels = list(STARTUP_COMMANDS)
    for label in labels:
        run_checked(STARTUP_COMMANDS[label])
    for round_number in range(runs):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            samples[label].append(run_checked(STARTUP_COMMANDS[label]))
    medians = {label: median(values) for label, values in samples.items()}
    help_s = medians["status.py --help"]
    return {
        "runs": runs,
        "median_s": medians,
        "status_help_vs_pass": ratio(help_s, medians["python -c pass"]),
        "status_help_vs_import_mlflow": ratio(help_s, medians['python -c "import mlflow"']),
        "heavy_imports_in_help": heavy_imports_of_help(),
        "samples_s": samples,
    }


# --- 2. promotion: the registry under test ---------------------------------------------------------


def populate(db_path: Path, versions: int) -> None:
    """Create the models straight in the sqlite store (far faster than over REST), before the server."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{db_path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name, count in ((TOOLKIT_MODEL, versions), (PLAIN_MODEL, versions), (TINY_MODEL, 1)):
        client.create_registered_model(name)
        for _ in range(count):
            client.create_model_version(name, SOURCE)


@dataclass
class Rig:
    """A populated server, the proxy in front of it, and clients for both."""

    server_uri: str
    proxy: CountingProxy
    client: "MlflowClient"  # straight to the server: untimed setup and the in-process timings
    counted_client: "MlflowClient"  # through the proxy
    plain_script: Path
    versions: int
    plain_cursor: int = 0

    def next_plain_version(self) -> str:
        """Versions 1..N in turn, so every plain alias move is a real move."""
        self.plain_cursor = self.plain_cursor % self.versions + 1
        return str(self.plain_cursor)


def make_client(uri: str) -> "MlflowClient":
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def record_passing_verdict(client: "MlflowClient", version: str) -> None:
    """Untimed: the verdict tags a passing ``compare_baseline.py`` leaves on a version, against the
    current champion (staging and production refuse a version without them). No evaluation run, so
    no run id tag: these versions have no model to evaluate."""
    from model_lifecycle import tags
    from model_lifecycle.adapters import registry
    from model_lifecycle.core import verdict as verdicts

    try:
        champion = str(client.get_model_version_by_alias(TOOLKIT_MODEL, NAMES.champion).version)
    except Exception as exc:  # noqa: BLE001 - no champion yet (the warm-up's first promotion)
        if not registry.is_not_found(exc):
            raise
        champion = None
    digest = verdicts.digest({"model": TOOLKIT_MODEL, "candidate": version, "baseline": champion, "passed": True})
    for key, value in ((tags.VERDICT_SHA256, digest), (tags.VERDICT_PASSED, "true"),
                       (tags.VERDICT_BASELINE, champion or "none")):
        client.set_model_version_tag(TOOLKIT_MODEL, version, key, value)


def stage_new_challenger(client: "MlflowClient") -> str:
    """Untimed: register one more version, record its passing verdict and make it @challenger, as the
    gate would."""
    version = str(client.create_model_version(TOOLKIT_MODEL, SOURCE, await_creation_for=0).version)
    record_passing_verdict(client, version)
    lifecycle.stage(client, TOOLKIT_MODEL, version, NAMES, reason="bench")
    return version


def toolkit_process(uri: str, version: str) -> float:
    argv = [PYTHON, "scripts/transition.py", "--tracking-uri", uri, "--model", TOOLKIT_MODEL,
            "--version", version, "--to", "production",
            # The versions here have no model artifacts, so no card can be built; the card gate
            # (an artifact download and a check) is outside this measurement of the alias move.
            "--skip-card-check", "--reason", "bench"]
    return run_checked(argv, child_env(uri))


def plain_process(rig: Rig, uri: str) -> float:
    return run_checked([PYTHON, str(rig.plain_script), uri, PLAIN_MODEL, rig.next_plain_version()], child_env(uri))


def toolkit_in_process(client: "MlflowClient", version: str) -> float:
    def promote() -> None:
        result = lifecycle.promote(client, TOOLKIT_MODEL, version, NAMES)
        assert result.changed, result  # core.lifecycle.promote returns a Change (was a dict)

    return timed(promote)


def plain_in_process(rig: Rig, client: "MlflowClient") -> float:
    version = rig.next_plain_version()
    return timed(lambda: client.set_registered_model_alias(PLAIN_MODEL, "champion", version))


# --- 2. promotion: measurements --------------------------------------------------------------------


def alternate(runs: int, toolkit: Callable[[], float], plain: Callable[[], float]) -> dict[str, list[float]]:
    """Toolkit and plain in turn, swapping which goes first each round, so drift hits both alike."""
    samples: dict[str, list[float]] = {"toolkit": [], "plain": []}
    for round_number in range(runs):
        order = [("toolkit", toolkit), ("plain", plain)]
        for label, action in order if round_number % 2 == 0 else order[::-1]:
            samples[label].append(action())
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, Any]:
    toolkit_s, plain_s = median(samples["toolkit"]), median(samples["plain"])
    return {
        "runs": len(samples["toolkit"]),
        "toolkit_s": toolkit_s,
        "plain_s": plain_s,
        "ratio": ratio(toolkit_s, plain_s),
        "samples_s": samples,
    }


def measure_process(rig: Rig, runs: int) -> dict[str, Any]:
    def toolkit() -> float:
        version = stage_new_challenger(rig.client)
        return toolkit_process(rig.server_uri, version)

    return summarize(alternate(runs, toolkit, lambda: plain_process(rig, rig.server_uri)))


def measure_in_process(rig: Rig, runs: int) -> dict[str, Any]:
    def toolkit() -> float:
        version = stage_new_challenger(rig.client)
        return toolkit_in_process(rig.client, version)

    return summarize(alternate(runs, toolkit, lambda: plain_in_process(rig, rig.client)))


def warm_up(rig: Rig) -> None:
    """Untimed: the first promotion creates the audit run and the first champion; the server warms up."""
    toolkit_in_process(rig.client, stage_new_challenger(rig.client))
    plain_in_process(rig, rig.client)
    toolkit_process(rig.server_uri, stage_new_challenger(rig.client))
    plain_process(rig, rig.server_uri)


def counted(proxy: CountingProxy, action: Callable[[], object]) -> dict[str, EndpointStats]:
    proxy.reset()
    action()
    return proxy.snapshot()


def count_rest_calls(rig: Rig) -> dict[str, dict[str, EndpointStats]]:
    """One promotion of each kind through the proxy; staging happens straight, so it is not counted."""
    proxy_uri = rig.proxy.uri
    toolkit_version = stage_new_challenger(rig.client)
    counts = {"toolkit_process": counted(rig.proxy, lambda: toolkit_process(proxy_uri, toolkit_version))}
    counts["plain_process"] = counted(rig.proxy, lambda: plain_process(rig, proxy_uri))
    toolkit_version = stage_new_challenger(rig.client)
    counts["toolkit_in_process"] = counted(
        rig.proxy, lambda: toolkit_in_process(rig.counted_client, toolkit_version)
    )
    counts["plain_in_process"] = counted(rig.proxy, lambda: plain_in_process(rig, rig.counted_client))
    return counts


def read_cost(client: "MlflowClient", runs: int = 10) -> dict[str, float]:
    """Round trip of one GetRegisteredModel, large model vs tiny: the server loads every version of the
    model (to compute its deprecated ``latest_versions``), so each such read grows with the versions."""
    return {
        f"{name}_s": median([timed(lambda n=name: client.get_registered_model(n)) for _ in range(runs)])
        for name in (TOOLKIT_MODEL, TINY_MODEL)
    }


def total_calls(stats: dict[str, EndpointStats]) -> int:
    return sum(s.calls for s in stats.values())


def search_calls(stats: dict[str, EndpointStats]) -> int:
    return sum(s.calls for key, s in stats.items() if SEARCH_ENDPOINT in key)


# --- orchestration ---------------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM while the server starts: ``local_server.start`` interrupted
    half-way would leave a server running in its own session, with no handle to stop it."""
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


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def build_rig(stack: contextlib.ExitStack, versions: int) -> Rig:
    """Populate a temp sqlite store, start the server and the proxy; all undone when ``stack`` closes."""
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lifecycle-")))
    log(f"registering 2 models x {versions} versions in sqlite ...")
    populate(root / "mlflow.db", versions)
    log("starting mlflow server ...")
    with deferred_interrupt():
        server = stack.enter_context(local_server.start(root))
    proxy = stack.enter_context(CountingProxy(server.uri))
    plain_script = root / "plain_promote.py"
    plain_script.write_text(PLAIN_SCRIPT)
    return Rig(server.uri, proxy, make_client(server.uri), make_client(proxy.uri), plain_script, versions)


def promotion_benchmark(stack: contextlib.ExitStack, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    rig = build_rig(stack, args.versions)
    log("warming up ...")
    warm_up(rig)
    setup_s = time.perf_counter() - started
    log(f"whole processes, {args.process_runs} each ...")
    process = measure_process(rig, args.process_runs)
    log(f"in process, {args.inprocess_runs} each ...")
    in_process = measure_in_process(rig, args.inprocess_runs)
    log("counting REST calls ...")  # last, on a warm server, so the per-endpoint server times are typical
    counts = count_rest_calls(rig)
    searched = search_calls(counts["toolkit_process"]) + search_calls(counts["toolkit_in_process"])
    return {
        "versions": args.versions,
        "setup_s": setup_s,
        "process": process,
        "in_process": in_process,
        "rest_calls": {
            kind: {"total": total_calls(stats), "by_endpoint": {k: asdict(v) for k, v in stats.items()}}
            for kind, stats in counts.items()
        },
        "toolkit_searched_versions": searched,
        "get_registered_model_s": read_cost(rig.client),
        "target_ratio": TARGET_RATIO,
        "target_met": process["ratio"] <= TARGET_RATIO,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        log(f"start-up, {args.startup_runs} runs each ...")
        startup = measure_startup(args.startup_runs)
        promotion = promotion_benchmark(stack, args)
        log("stopping the server ...")
    return {"startup": startup, "promotion": promotion, "total_s": time.perf_counter() - started}


# --- report ----------------------------------------------------------------------------------------


def render(report: dict[str, Any], out: Any) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    s, p = report["startup"], report["promotion"]
    line(f"Start-up, whole process (median of {s['runs']})")
    for label, seconds in s["median_s"].items():
        line(f"  {label:<28} {seconds * 1000:8.0f} ms")
    line(f"  status.py --help / python -c pass:        {s['status_help_vs_pass']:.2f}x")
    line(f"  status.py --help / python -c 'import mlflow': {s['status_help_vs_import_mlflow']:.2f}x")
    line(f"  heavy packages imported by --help: {', '.join(s['heavy_imports_in_help']) or 'none'}")
    line()
    calls = p["rest_calls"]
    line(f"Promotion on a model with {p['versions']} versions      toolkit      plain   toolkit/plain")
    for key, label in (("process", "whole process"), ("in_process", "in process")):
        m = p[key]
        title = f"{label} (median of {m['runs']})"
        line(f"  {title:<38} {m['toolkit_s']:7.3f} s {m['plain_s']:7.3f} s   {m['ratio']:6.2f}x")
    for key, label in (("process", "REST calls, whole process"), ("in_process", "REST calls, in process")):
        toolkit, plain = calls[f"toolkit_{key}"]["total"], calls[f"plain_{key}"]["total"]
        line(f"  {label:<38} {toolkit:9d} {plain:9d}   {ratio(toolkit, plain):6.2f}x")
    verdict = "met" if p["target_met"] else "MISSED"
    line(f"  target: whole-process toolkit/plain <= {p['target_ratio']}x -> {verdict}")
    line()
    line("REST calls of one toolkit promotion (transition.py --to production), by endpoint")
    line(f"  {'calls':>5} {'server ms':>10}  endpoint")
    for endpoint, stats in calls["toolkit_process"]["by_endpoint"].items():
        line(f"  {stats['calls']:5d} {stats['server_seconds'] * 1000:10.0f}  {endpoint}")
    line(f"  {SEARCH_ENDPOINT} calls during toolkit promotions: {p['toolkit_searched_versions']}")
    read = p["get_registered_model_s"]
    line(
        f"  one GetRegisteredModel: {read[TOOLKIT_MODEL + '_s'] * 1000:.0f} ms on {p['versions']} versions, "
        f"{read[TINY_MODEL + '_s'] * 1000:.0f} ms on 1 version (the server loads every version)"
    )
    line()
    line(f"setup {p['setup_s']:.1f} s, total {report['total_s']:.1f} s")


def check(report: dict[str, Any]) -> list[str]:
    """Hard requirements (the ratio target is reported, not enforced: timings vary by machine)."""
    failures = []
    if report["promotion"]["toolkit_searched_versions"]:
        failures.append(f"the toolkit promotion called {SEARCH_ENDPOINT}: it pages through versions")
    if "mlflow" in report["startup"]["heavy_imports_in_help"]:
        failures.append("status.py --help imports mlflow: imports are not lazy")
    return failures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_lifecycle.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--versions", type=int, default=2000, help="Versions of the promoted model (default 2000).")
    add("--json", action="store_true", help="Print the figures as JSON on stdout; the table goes to stderr.")
    add("--startup-runs", type=int, default=10, help="Runs of each start-up command (default 10).")
    add("--process-runs", type=int, default=5, help="Whole-process promotions of each kind (default 5).")
    add("--inprocess-runs", type=int, default=20, help="In-process promotions of each kind (default 20).")
    args = parser.parse_args(argv)
    if args.versions < 2 or min(args.startup_runs, args.process_runs, args.inprocess_runs) < 1:
        parser.error("--versions must be at least 2 and every run count at least 1")
    return args


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_report(args: argparse.Namespace, run: Callable[[argparse.Namespace], dict[str, Any]],
               render: Callable[[dict[str, Any], Any], None], check: Callable[[dict[str, Any]], list[str]],
               cleaned_up: str) -> int:
    """A benchmark's main: `kill` cleans up as Ctrl-C does; the tables (on stderr with --json), the
    JSON, and a FAIL line per missed target (exit 1)."""
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        report = run(args)
    except KeyboardInterrupt:
        log(f"interrupted; {cleaned_up}")
        return 130
    render(report, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    failures = check(report)
    for failure in failures:
        log(f"FAIL: {failure}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_report(parse_args(argv), run, render, check, "the server was stopped and the temp dir removed")


if __name__ == "__main__":
    raise SystemExit(main())
