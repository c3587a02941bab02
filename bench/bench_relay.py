"""Benchmark of the registration relay (issue 6): a burst of signed deliveries on loopback.

A relay process (scripts/relay.py serve) in front of a local stand-in for GitHub's API; 20
concurrent senders post 1,000 signed ``model_version.created`` deliveries (each sender's
models numbered apart), each retrying a delivery until it is accepted, as MLflow would. Reported, for GitHub
answering normally and with 10% errors: accepted deliveries per second, p50/p99 time to answer,
time until the queue is drained, and deliveries lost or duplicated (both must be 0).
Baseline for the answer time: the same senders against a bare HTTP server that answers 200 at once
(no verification, no storage), measured in the same run. Like the relay, it runs in a process of its
own (``--bare-server PORT``): in the load generator's interpreter it would share the senders' GIL
and come out slower than the relay.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fake_github import FakeGitHub  # noqa: E402

from model_lifecycle.edges.local_server import free_port  # noqa: E402
from model_lifecycle.adapters.relay_service import sign  # noqa: E402

SECRET = "bench-secret-0123456789abcdef-0123456789"  # the relay wants 32 bytes or more


def body(model: str, version: int) -> bytes:
    return json.dumps({"entity": "model_version", "action": "created", "timestamp": "2026-11-27T00:00:00Z",
                       "data": {"name": model, "version": str(version), "source": "models:/m-bench",
                                "run_id": "bench-run"}}).encode()


def burst(port: int, senders: int, per_sender: int) -> tuple[list[float], float]:
    """Every sender posts its deliveries in order; returns per-delivery answer times and wall time."""
    import requests

    def run(sender: int) -> list[float]:
        session = requests.Session()
        times = []
        for i in range(per_sender):
            model, version = f"bench-{sender:02d}-{i // 20}", i % 20 + 1  # unique per delivery
            data, delivery, stamp = body(model, version), str(uuid.uuid4()), str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
                       "X-MLflow-Timestamp": stamp, "X-MLflow-Signature": sign(SECRET, delivery, stamp, data)}
            while True:
                started = time.perf_counter()
                try:
                    status = session.post(f"http://127.0.0.1:{port}/webhook", data=data, headers=headers, timeout=10).status_code
                except requests.RequestException:
                    status = 0
                if status in (200, 409):
                    times.append(time.perf_counter() - started)
                    break
                time.sleep(0.05)
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        results = list(pool.map(run, range(senders)))
    return [t for r in results for t in r], time.perf_counter() - started


class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # readiness probe
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def wait_until_up(port: int, path: str = "/healthz", deadline_s: float = 30) -> None:
    import requests

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def serve_bare(port: int) -> None:
    """The baseline server, run as its own process by ``baseline()``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Bare)
    server.daemon_threads = True
    server.serve_forever()


def scenario(error_rate: float, senders: int, per_sender: int, tmp: Path) -> dict:
    github = FakeGitHub().start()
    github.dispatch_error_rate = error_rate
    port = free_port()
    db = tmp / f"relay-{error_rate}.db"
    env = {**os.environ, "RELAY_WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "bench", "GITHUB_API_URL": github.url}
    relay = subprocess.Popen([sys.executable, str(REPO / "scripts" / "relay.py"), "serve", "--port", str(port),
                              "--db", str(db), "--github-repo", "acme/bench"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port)
        times, wall = burst(port, senders, per_sender)
        total = senders * per_sender
        drain_start = time.perf_counter()
        while len(github.dispatches) < total and time.perf_counter() - drain_start < 300:
            time.sleep(0.1)
        drained = time.perf_counter() - drain_start
        sent = [(d["client_payload"]["name"], d["client_payload"]["version"]) for d in github.dispatches]
        return {"error_rate": error_rate, "deliveries": total, "accepted_per_s": total / wall,
                "p50_ms": statistics.median(times) * 1000, "p99_ms": statistics.quantiles(times, n=100)[98] * 1000,
                "drain_s": drained, "lost": total - len(set(sent)), "duplicated": len(sent) - len(set(sent))}
    finally:
        relay.terminate()
        relay.wait(10)
        github.stop()


def baseline(senders: int, per_sender: int) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, "/")
        times, wall = burst(port, senders, per_sender)
    finally:
        server.terminate()
        server.wait(10)
    total = senders * per_sender
    return {"accepted_per_s": total / wall, "p50_ms": statistics.median(times) * 1000,
            "p99_ms": statistics.quantiles(times, n=100)[98] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(args.bare_server)
        return
    per_sender = args.deliveries // args.senders
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        bare = baseline(args.senders, per_sender)
        results = [scenario(rate, args.senders, per_sender, Path(tmp)) for rate in (0.0, 0.10)]
    if args.json:
        print(json.dumps({"baseline": bare, "relay": results}, indent=2))
        return
    print(f"{args.senders} senders x {per_sender} signed deliveries on loopback")
    print(f"bare HTTP 200 server (baseline): {bare['accepted_per_s']:7.0f}/s  p50 {bare['p50_ms']:.2f} ms  p99 {bare['p99_ms']:.2f} ms")
    for r in results:
        print(f"relay, GitHub {r['error_rate']:.0%} errors: {r['accepted_per_s']:7.0f}/s  p50 {r['p50_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms (x{r['p99_ms'] / bare['p99_ms']:.1f} baseline)  drained in {r['drain_s']:.1f} s  "
              f"lost {r['lost']}  duplicated {r['duplicated']}")


if __name__ == "__main__":
    main()
