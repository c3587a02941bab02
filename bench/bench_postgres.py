"""Benchmark: the toolkit on a PostgreSQL-backed MLflow with 4 server workers.

What a team running MLflow on PostgreSQL behind ``mlflow server --workers 4`` gets:

1. A promotion (``transition.py --to production``) against a plain script that only moves the alias
   with ``MlflowClient``, on the same server, alternating, as whole processes and in process (the
   measurement of ``bench_lifecycle.py``, whose code this reuses), on a model with 2,000 versions.
   Twice: on the server as MLflow ships it (uvicorn with ``--workers`` more than 1 loses TCP_NODELAY,
   so each keep-alive request after the first waits ~43 ms for a delayed ACK; Kludex/uvicorn#3149)
   and with TCP_NODELAY given back (``tests/postgres.py``, ``nodelay=True``). Target: 1.5x.
2. 100 concurrent promotions, every promoter a ``transition.py`` process: (a) 100 models, one
   promotion each; (b) 10 models, 10 promoters each with the same ``--expect-champion``. Counted
   from the audit record afterwards: lost events (a promotion that exited 0 without its event) and
   duplicated ones (two events for one change, or an event of a refused promoter). Target: 0 and 0.
3. A registry at scale: 200 models x 50 versions and one model with 20,000 versions, their rows
   copied from rows the server wrote (``postgres.clone_versions``): ``status``, ``archive
   --dry-run``, a promotion and a rollback on the big model, timed, with their REST calls counted;
   the REST calls of a promotion on the big model against one on a 3-version model (must be equal:
   a promotion never pages through versions); one GetRegisteredModel on each.
4. The audit record as models grow: ``audit.read`` of one model (what ``status``, ``rollback`` and
   retention do) with 100 and with 1,000 models audited (10 events each).

Everything runs on loopback against a throw-away cluster in a temp dir, stopped at the end, also on
Ctrl-C. Section 1's timings go straight to the server; only the counting runs go through the proxy.

    python bench/bench_postgres.py [--versions 2000] [--big-versions 20000] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import runpy
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH), str(REPO / "tests")]

import bench_lifecycle as lifecycle_bench  # noqa: E402 - the promotion measurement, reused as is
import postgres  # noqa: E402 - tests/postgres.py: the cluster and the server
from _counting_proxy import CountingProxy  # noqa: E402
from bench_lifecycle import (  # noqa: E402
    PLAIN_MODEL, PLAIN_SCRIPT, TINY_MODEL, TOOLKIT_MODEL, Rig, log, make_client, median, ratio, timed,
)

TARGET_RATIO = 1.5
SOURCE = "s3://bench-never-read/model"
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


# --- the registry ----------------------------------------------------------------------------------


def template(client: Any, name: str) -> str:
    """A model with one version, created through REST: the rows the clones copy."""
    client.create_registered_model(name)
    client.create_model_version(name, SOURCE, await_creation_for=0)
    return name


def populate_promotion_models(pg: postgres.PostgresMlflow, versions: int) -> None:
    """bench_lifecycle's three models (toolkit, plain, tiny), versions copied from a REST-made one."""
    client = make_client(pg.uri)
    source = template(client, f"bench-template-{uuid.uuid4().hex[:6]}")
    for name in (TOOLKIT_MODEL, PLAIN_MODEL, TINY_MODEL):
        client.create_registered_model(name)
    postgres.clone_versions(pg.cluster, pg.database, source, [TOOLKIT_MODEL, PLAIN_MODEL], 1, versions)
    postgres.clone_versions(pg.cluster, pg.database, source, [TINY_MODEL], 1, 1)


# --- 1. promotion against a plain alias move --------------------------------------------------------


def promotion_figures(stack: contextlib.ExitStack, pg: postgres.PostgresMlflow, args: argparse.Namespace,
                      label: str) -> dict[str, Any]:
    started = time.perf_counter()
    log(f"[{label}] {args.versions} versions x 2 models (rows copied) ...")
    populate_promotion_models(pg, args.versions)
    proxy = stack.enter_context(CountingProxy(pg.uri))
    plain_script = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-"))) / "plain_promote.py"
    plain_script.write_text(PLAIN_SCRIPT)
    rig = Rig(pg.uri, proxy, make_client(pg.uri), make_client(proxy.uri), plain_script, args.versions)
    log(f"[{label}] warming up ...")
    lifecycle_bench.warm_up(rig)
    setup_s = time.perf_counter() - started
    log(f"[{label}] whole processes, {args.process_runs} each ...")
    process = lifecycle_bench.measure_process(rig, args.process_runs)
    log(f"[{label}] in process, {args.inprocess_runs} each ...")
    in_process = lifecycle_bench.measure_in_process(rig, args.inprocess_runs)
    log(f"[{label}] counting REST calls ...")
    counts = lifecycle_bench.count_rest_calls(rig)
    return {
        "server": label,
        "versions": args.versions,
        "setup_s": setup_s,
        "process": process,
        "in_process": in_process,
        "rest_calls": {kind: {"total": lifecycle_bench.total_calls(stats),
                              "by_endpoint": {k: asdict(v) for k, v in stats.items()}}
                       for kind, stats in counts.items()},
        "toolkit_searched_versions": lifecycle_bench.search_calls(counts["toolkit_process"])
        + lifecycle_bench.search_calls(counts["toolkit_in_process"]),
        "get_registered_model_s": lifecycle_bench.read_cost(rig.client),
        "target_met": process["ratio"] <= TARGET_RATIO,
    }


# --- 2. concurrent promotions ----------------------------------------------------------------------


def _promoter(argv: list[str], output: str, start: Any) -> None:
    """In a child of the fork server (MLflow already imported there): one transition.py run."""
    start.wait()
    handle = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    sys.argv = list(argv)
    code = 0
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported through the exit code and the output file
        import traceback

        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def promoters_at_once(jobs: list[list[str]], workdir: Path) -> tuple[list[int], list[str], float]:
    """Start every job (a transition.py argv) as its own process, release them together; exit codes,
    outputs and the wall time from the release until the last one exited."""
    context = multiprocessing.get_context("forkserver")
    start = context.Event()
    outputs = [str(workdir / f"promoter-{i}.txt") for i in range(len(jobs))]
    processes = [context.Process(target=_promoter, args=(argv, out, start)) for argv, out in zip(jobs, outputs)]
    for process in processes:
        process.start()
    time.sleep(1.0)  # let every child reach the start line
    released = time.perf_counter()
    start.set()
    for process in processes:
        process.join(600)
    wall = time.perf_counter() - released
    texts = [Path(out).read_text(errors="replace") if Path(out).exists() else "" for out in outputs]
    return [p.exitcode if p.exitcode is not None else -1 for p in processes], texts, wall


def transition_argv(uri: str, name: str, version: str, expect: str) -> list[str]:
    return [str(REPO / "scripts" / "transition.py"), "--tracking-uri", uri, "--model", name, "--version", version,
            "--to", "production", "--expect-champion", expect, "--force", "--reason", "bench", "--skip-card-check"]


def audit_by_model(client: Any) -> dict[str, list[dict[str, Any]]]:
    """Every audit event of every model, read with a plain client (the experiment's runs, paged)."""
    experiment = client.get_experiment_by_name("model-lifecycle-audit")
    found: dict[str, dict[str, dict[str, Any]]] = {}
    token = None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        for run in page:
            model = run.data.tags.get("lifecycle.audit_model")
            for key, value in run.data.tags.items():
                if key.startswith("audit."):
                    found.setdefault(model, {})[key] = json.loads(value)
        token = page.token
        if not token:
            break
    return {model: [events[k] for k in sorted(events)] for model, events in found.items()}


def concurrent_figures(pg: postgres.PostgresMlflow, workdir: Path, models: int, per_model: int) -> dict[str, Any]:
    """``models`` models with ``per_model + 1`` versions, no champion; ``per_model`` promoters per model,
    each promoting another version with --expect-champion none, all released at once."""
    client = make_client(pg.uri)
    tag = uuid.uuid4().hex[:6]
    source = template(client, f"bench-conc-template-{tag}")
    names = [f"bench-conc-{tag}-{i:03d}" for i in range(models)]
    postgres.clone_models(pg.cluster, pg.database, source, names)
    postgres.clone_versions(pg.cluster, pg.database, source, names, 1, per_model + 1)
    jobs, owners = [], []
    for name in names:
        for version in range(2, per_model + 2):
            jobs.append(transition_argv(pg.uri, name, str(version), "none"))
            owners.append((name, str(version)))
    log(f"{len(jobs)} promoters at once ({models} models x {per_model}) ...")
    codes, texts, wall = promoters_at_once(jobs, workdir)
    events = audit_by_model(client)
    lost = duplicated = wrong_champion = 0
    for name in names:
        winners = [v for (n, v), c in zip(owners, codes) if n == name and c == 0]
        recorded = [e for e in events.get(name, []) if e.get("action") == "promote"]
        ids = [e["id"] for e in recorded]
        duplicated += len(ids) - len(set(ids))
        recorded_versions = [e["version"] for e in recorded]
        lost += sum(1 for v in winners if v not in recorded_versions)
        duplicated += sum(1 for v in recorded_versions if v not in winners)
        duplicated += max(0, len(set(recorded_versions)) - 1)
        champion = client.get_registered_model(name).aliases.get("champion")
        if champion is None or [str(champion)] != winners:
            wrong_champion += 1
    unexpected = sorted({c for c in codes} - {0, 1})
    failures = [text.strip()[-400:] for c, text in zip(codes, texts) if c not in (0, 1)][:3]
    return {
        "models": models, "promoters_per_model": per_model, "promoters": len(jobs),
        "exited_0": codes.count(0), "exited_1": codes.count(1), "other_exit_codes": unexpected,
        "first_failures": failures, "lost_events": lost, "duplicated_events": duplicated,
        "champion_not_the_winner": wrong_champion, "wall_s": wall,
        "promotions_per_s": codes.count(0) / wall if wall else 0.0,
    }


# --- 3. a registry at scale ------------------------------------------------------------------------


def cli(module: Any, argv: list[str]) -> tuple[int, dict[str, Any], float]:
    """A step's main() in process with --json, its stdout captured: (exit code, JSON, seconds)."""
    import io

    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = module.main([*argv, "--json"])
    elapsed = time.perf_counter() - started
    text = out.getvalue().strip()
    return code, (json.loads(text) if text else {}), elapsed


def scale_figures(pg: postgres.PostgresMlflow, args: argparse.Namespace) -> dict[str, Any]:
    from model_lifecycle import tags
    from model_lifecycle.edges.commands import archive, rollback, status, transition

    client = make_client(pg.uri)
    tag = uuid.uuid4().hex[:6]
    source = template(client, f"bench-scale-template-{tag}")
    started = time.perf_counter()
    names = [f"bench-scale-{tag}-{i:03d}" for i in range(args.models)]
    postgres.clone_models(pg.cluster, pg.database, source, names)
    postgres.clone_versions(pg.cluster, pg.database, source, names, 1, args.versions_each, step_ms=DAY_MS)
    big, small = f"bench-big-{tag}", f"bench-small-{tag}"
    for name in (big, small):
        client.create_registered_model(name)
    postgres.clone_versions(pg.cluster, pg.database, source, [big], 1, args.big_versions, step_ms=HOUR_MS)
    postgres.clone_versions(pg.cluster, pg.database, source, [small], 1, 3)
    populate_s = time.perf_counter() - started
    log(f"scale: {args.models} x {args.versions_each} + {args.big_versions} versions copied in {populate_s:.1f} s")
    uri = pg.uri
    figures: dict[str, Any] = {"models": args.models, "versions_each": args.versions_each,
                               "big_versions": args.big_versions, "populate_s": populate_s, "steps": {}}

    def verdict(name: str, version: str) -> None:  # what a passing compare leaves (untimed)
        champion = client.get_registered_model(name).aliases.get("champion")
        for key, value in ((tags.VERDICT_SHA256, "sha256:" + "0" * 64), (tags.VERDICT_PASSED, "true"),
                           (tags.VERDICT_BASELINE, str(champion) if champion else "none")):
            client.set_model_version_tag(name, version, key, value)

    with CountingProxy(uri) as proxy:
        def step(label: str, module: Any, argv: list[str]) -> dict[str, Any]:
            proxy.reset()
            code, result, seconds = cli(module, ["--tracking-uri", proxy.uri, *argv])
            stats = proxy.snapshot()
            if code != 0:
                raise RuntimeError(f"{label} exited {code}: {result.get('error')}")
            figures["steps"][label] = {"seconds": seconds, "rest_calls": sum(s.calls for s in stats.values()),
                                       "server_seconds": sum(s.server_seconds for s in stats.values())}
            log(f"scale: {label}: {seconds:.2f} s, {figures['steps'][label]['rest_calls']} REST calls")
            return result

        last, before = str(args.big_versions), str(args.big_versions - 1)
        listed = step("status", status, ["--model", big])
        figures["status_versions"] = len(listed.get("versions") or [])
        for name, first, second in ((big, before, last), (small, "2", "3")):
            for version, expect in ((first, "none"), (second, first)):
                verdict(name, version)
                code, result, _ = cli(transition, ["--tracking-uri", uri, "--model", name, "--version", version,
                                                   "--to", "staging"])
                assert code == 0, result
                label = f"promotion ({'big' if name == big else '3 versions'}{', first' if expect == 'none' else ''})"
                step(label, transition, ["--model", name, "--version", version, "--to", "production",
                                         "--expect-champion", expect, "--skip-card-check", "--reason", "bench"])
        step("rollback", rollback, ["--model", big, "--reason", "bench"])
        planned = step("archive --dry-run", archive, ["--model", big, "--keep-last", "5", "--older-than", "30",
                                                      "--dry-run"])
        figures["would_archive"] = len(planned.get("would_archive") or [])
    figures["get_registered_model_s"] = {
        "big": median([timed(lambda: client.get_registered_model(big)) for _ in range(5)]),
        "3 versions": median([timed(lambda: client.get_registered_model(small)) for _ in range(5)]),
    }
    steps = figures["steps"]
    figures["promotion_calls_equal"] = steps["promotion (big)"]["rest_calls"] == steps["promotion (3 versions)"][
        "rest_calls"]
    return figures


# --- 4. the audit record as models grow --------------------------------------------------------------


def audit_figures(pg: postgres.PostgresMlflow, sizes: list[int], events_each: int) -> dict[str, Any]:
    """``audit.read`` of one model while ``n`` models have audit records of ``events_each`` events."""
    from mlflow.entities import RunTag

    from model_lifecycle.core import audit

    client = make_client(pg.uri)
    experiment = client.get_experiment_by_name(audit.AUDIT_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(audit.AUDIT_EXPERIMENT)
    probe = f"bench-audit-probe-{uuid.uuid4().hex[:6]}"

    def audited(index: int, name: str | None = None) -> None:
        name = name or f"bench-audit-{uuid.uuid4().hex[:8]}-{index}"
        run = client.create_run(experiment_id, run_name=name, tags={audit.MODEL_TAG: name})
        events = [audit.new_event("promote", name, str(v), reason="bench " * 20) for v in range(events_each)]
        for seq, event in enumerate(events, 1):
            event["seq"] = seq
        client.log_batch(run.info.run_id, tags=[RunTag(audit.event_key(e), audit.encode(e)) for e in events])

    audited(0, probe)
    figures: dict[str, Any] = {"events_each": events_each, "reads": []}
    with ThreadPoolExecutor(8) as pool:
        for size in sizes:
            total = len(audit_by_model(client))
            list(pool.map(audited, range(total, size)))
            total = max(total, size)
            with CountingProxy(pg.uri) as proxy:
                counted = make_client(proxy.uri)
                seconds = median([timed(lambda c=counted: audit.read(c, probe)) for _ in range(3)])
                calls = sum(s.calls for s in proxy.snapshot().values()) / 3
            figures["reads"].append({"audited_models": total, "read_s": seconds, "rest_calls": calls})
            log(f"audit.read of one model with {total} models audited: {seconds * 1000:.0f} ms, {calls:.0f} calls")
    return figures


# --- orchestration -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        log("starting a PostgreSQL cluster ...")
        with lifecycle_bench.deferred_interrupt():
            cluster = stack.enter_context(postgres.start_cluster())
        servers = {}
        for label, nodelay in (("as shipped", False), ("TCP_NODELAY", True)):
            log(f"starting mlflow server --workers 4 ({label}) ...")
            with lifecycle_bench.deferred_interrupt():
                server = stack.enter_context(postgres.start_mlflow(
                    cluster, cluster.root / f"mlflow-{int(nodelay)}", database=f"mlflow_{int(nodelay)}",
                    nodelay=nodelay))
            servers[label] = postgres.PostgresMlflow(cluster, server)
        shipped = servers["as shipped"]
        report["promotion"] = [promotion_figures(stack, pg, args, label) for label, pg in servers.items()]
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-promoters-")))
        # MLflow's telemetry, when its config URL cannot be reached (this machine is offline), pops
        # _MLFLOW_TELEMETRY_SESSION_ID from os.environ in a background thread; a REST call iterating
        # os.environ at that moment (requests' proxy look-up) fails with KeyError and the step exits 3.
        # It hit 1 of 100 promoters here; the race tests switch telemetry off too (test_races.FAST).
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        multiprocessing.get_context("forkserver").set_forkserver_preload(
            ["__main__", "mlflow", "mlflow.tracking", "model_lifecycle.core.lifecycle", "model_lifecycle.edges.main",
             "model_lifecycle.edges.commands.transition"])
        report["concurrent"] = [concurrent_figures(shipped, workdir, 100, 1),
                                concurrent_figures(shipped, workdir, 10, 10)]
        report["scale"] = scale_figures(shipped, args)
        report["audit"] = audit_figures(shipped, [100, args.audited_models], 10)
        log("stopping the servers and the cluster ...")
    report["total_s"] = time.perf_counter() - started
    return report


# --- report ------------------------------------------------------------------------------------------


def render(report: dict[str, Any], out: Any) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    for p in report["promotion"]:
        calls = p["rest_calls"]
        line(f"Promotion on PostgreSQL, mlflow server --workers 4 ({p['server']}), {p['versions']} versions"
             "      toolkit      plain   toolkit/plain")
        for key, label in (("process", "whole process"), ("in_process", "in process")):
            m = p[key]
            title = f"{label} (median of {m['runs']})"
            line(f"  {title:<38} {m['toolkit_s']:7.3f} s {m['plain_s']:7.3f} s   {m['ratio']:6.2f}x")
        for key, label in (("process", "REST calls, whole process"), ("in_process", "REST calls, in process")):
            toolkit, plain = calls[f"toolkit_{key}"]["total"], calls[f"plain_{key}"]["total"]
            line(f"  {label:<38} {toolkit:9d} {plain:9d}   {ratio(toolkit, plain):6.2f}x")
        read = p["get_registered_model_s"]
        line(f"  one GetRegisteredModel: {read[TOOLKIT_MODEL + '_s'] * 1000:.0f} ms on {p['versions']} versions, "
             f"{read[TINY_MODEL + '_s'] * 1000:.0f} ms on 1 version")
        line(f"  target: whole-process toolkit/plain <= {TARGET_RATIO}x -> {'met' if p['target_met'] else 'MISSED'}")
        line()
    line("Concurrent promotions (transition.py processes released together)")
    line(f"  {'models x promoters':<20} {'exit 0':>7} {'exit 1':>7} {'other':>6} {'lost':>5} {'dup':>5} "
         f"{'wrong @champion':>16} {'wall':>8} {'promotions/s':>13}")
    for c in report["concurrent"]:
        line(f"  {c['models']:>4} x {c['promoters_per_model']:<13} {c['exited_0']:7d} {c['exited_1']:7d} "
             f"{len(c['other_exit_codes']):6d} {c['lost_events']:5d} {c['duplicated_events']:5d} "
             f"{c['champion_not_the_winner']:16d} {c['wall_s']:7.1f}s {c['promotions_per_s']:13.1f}")
    line()
    s = report["scale"]
    line(f"Registry at scale: {s['models']} models x {s['versions_each']} versions + one of {s['big_versions']} "
         f"(rows copied in {s['populate_s']:.1f} s)")
    line(f"  {'step':<34} {'seconds':>8} {'REST calls':>11} {'server s':>9}")
    for label, f in s["steps"].items():
        line(f"  {label:<34} {f['seconds']:8.2f} {f['rest_calls']:11d} {f['server_seconds']:9.2f}")
    line(f"  status listed {s['status_versions']} versions; archive --dry-run would archive {s['would_archive']}")
    line(f"  REST calls of a promotion equal on {s['big_versions']} and 3 versions: {s['promotion_calls_equal']}")
    read = s["get_registered_model_s"]
    line(f"  one GetRegisteredModel: {read['big'] * 1000:.0f} ms on {s['big_versions']} versions, "
         f"{read['3 versions'] * 1000:.0f} ms on 3")
    line()
    a = report["audit"]
    line(f"Audit record read of one model (status, rollback, retention), {a['events_each']} events per model")
    for r in a["reads"]:
        line(f"  {r['audited_models']:6d} models audited: {r['read_s'] * 1000:8.0f} ms, "
             f"{r['rest_calls']:.0f} REST calls")
    line()
    line(f"total {report['total_s']:.1f} s")


def check(report: dict[str, Any]) -> list[str]:
    """Hard requirements (the ratio target is reported, not enforced: timings vary by machine)."""
    failures = []
    for c in report["concurrent"]:
        what = f"{c['models']} models x {c['promoters_per_model']}"
        if c["lost_events"] or c["duplicated_events"]:
            failures.append(f"{what}: {c['lost_events']} lost and {c['duplicated_events']} duplicated audit events")
        if c["other_exit_codes"]:
            failures.append(f"{what}: exit codes {c['other_exit_codes']}: {c['first_failures']}")
        if c["exited_0"] != c["models"] or c["champion_not_the_winner"]:
            failures.append(f"{what}: {c['exited_0']} winners for {c['models']} models, "
                            f"{c['champion_not_the_winner']} with another @champion")
    for p in report["promotion"]:
        if p["toolkit_searched_versions"]:
            failures.append(f"promotion ({p['server']}) searched model versions")
    if not report["scale"]["promotion_calls_equal"]:
        failures.append("a promotion makes more REST calls on the big model than on a 3-version one")
    return failures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_postgres.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--versions", type=int, default=2000, help="Versions of the promoted models in section 1 (default 2000).")
    add("--process-runs", type=int, default=5, help="Whole-process promotions of each kind (default 5).")
    add("--inprocess-runs", type=int, default=20, help="In-process promotions of each kind (default 20).")
    add("--models", type=int, default=200, help="Models of the registry at scale (default 200).")
    add("--versions-each", type=int, default=50, help="Versions of each of them (default 50).")
    add("--big-versions", type=int, default=20000, help="Versions of the big model (default 20000).")
    add("--audited-models", type=int, default=1000, help="Models with an audit record, at most (default 1000).")
    add("--json", action="store_true", help="Print the figures as JSON on stdout; the tables go to stderr.")
    args = parser.parse_args(argv)
    if min(args.versions, args.big_versions) < 3 or min(args.process_runs, args.inprocess_runs, args.models,
                                                          args.versions_each, args.audited_models) < 1:
        parser.error("--versions and --big-versions must be at least 3 and every count at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return lifecycle_bench.run_report(parse_args(argv), run, render, check,
                                      "the servers and the cluster were stopped and the temp dirs removed")


if __name__ == "__main__":
    raise SystemExit(main())
