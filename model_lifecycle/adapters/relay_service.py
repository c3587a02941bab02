"""The registration relay: MLflow webhook deliveries in, GitHub repository_dispatch out, nothing lost.

MLflow drops a webhook after three retries, keeps no delivery log, and loses queued events on a
restart. The relay therefore:
* verifies each delivery (HMAC-SHA256 signature, constant-time; timestamp tolerance; replayed
  delivery ids; a well-formed Content-Length within the size limit, refused before reading; content
  type; the envelope's shape) and stores it in sqlite *before* answering 200;
* guards its intake: every connection has a few seconds to send its request, and beyond a
  connection limit the longest-waiting idle connection is closed, so idle sockets cannot starve
  deliveries;
* forwards stored events from one dispatcher thread, oldest first and one at a time per model (so
  order per model holds), retrying with backoff that honours GitHub's rate-limit headers. The
  look-up of ``run_id``/``source`` in MLflow (MLflow sends ``run_id`` null for ``models:/m-...``
  registrations) runs beside the dispatcher with a deadline: a slow or hung MLflow holds only the
  model whose event waits for it. An event that cannot be delivered (the version is gone, GitHub
  refuses the token, attempts used up) is marked failed, counted and logged, and its model moves
  on; ``relay.py failed`` lists such events and ``relay.py requeue`` queues them again;
* reconciles: periodically lists the registry's versions created since the relay first started and
  queues any that no delivery brought (MLflow dropped it, or the relay was down).
Delivery to GitHub is at least once: a crash between GitHub's answer and the relay's commit can
repeat that one event; the dedupe key stops webhook and reconciler from both sending a version.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import queue
import random
import re
import socket
import sqlite3
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from model_lifecycle import tags
from model_lifecycle.adapters import github, registry

log = logging.getLogger("relay")

EVENT_TYPES = {
    ("model_version", "created"): "model-registered",
    ("model_version_alias", "created"): "model-alias-changed",
    ("model_version_alias", "deleted"): "model-alias-changed",
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT UNIQUE,
    dedupe_key TEXT UNIQUE,
    model TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    forwarded_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, model, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_LENGTH = re.compile(r"[0-9]{1,18}")
_FD_RESERVE = 64  # file descriptors kept free for sqlite, MLflow and GitHub connections


@dataclass
class Settings:
    secret: str
    github_repo: str
    github_token: str
    github_api_url: str = "https://api.github.com"
    tracking_uri: str | None = None
    tolerance_seconds: int = 300
    max_body_bytes: int = 1 << 20
    reconcile_seconds: float = 60.0
    models: list[str] = field(default_factory=list)  # empty: every registered model
    max_backoff_seconds: float = 60.0
    max_attempts: int = 30  # then the event is failed (requeue it with `relay.py requeue`)
    lookup_timeout_seconds: float = 10.0  # the run_id/source look-up in MLflow, per attempt
    lookup_threads: int = 4
    request_timeout_seconds: float = 5.0  # for a client to send its request (head, then body)
    max_connections: int = 256  # open client connections; capped below the file-descriptor limit
    github_timeout_seconds: float = 15.0


# --- storage --------------------------------------------------------------------------------------
@contextmanager
def _private_files() -> Iterator[None]:
    """Files created inside (the database and sqlite's -wal and -shm) are readable by the owner only.
    The umask is process-wide: the relay opens its store before starting any thread."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class Store:
    """sqlite in WAL mode; every write commits before the caller answers anyone. Files are 0600."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = str(path)
        if not create and not os.path.isfile(self.path):
            raise FileNotFoundError(self.path)
        self.lock = threading.Lock()
        with _private_files():
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            with self.lock:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('started_at', ?)", (str(time.time()),))
        # an existing database keeps its mode otherwise; sqlite gives -wal and -shm the database's mode
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(self.path + suffix, 0o600)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def started_at(self) -> float:
        return float(self.db.execute("SELECT value FROM meta WHERE key='started_at'").fetchone()[0])

    def add(self, delivery_id: str | None, dedupe_key: str, model: str, event_type: str, payload: dict, source: str) -> str:
        """'stored', 'replay' (delivery id seen) or 'duplicate' (same registration already queued)."""
        with self.lock:
            if delivery_id and self.db.execute("SELECT 1 FROM events WHERE delivery_id=?", (delivery_id,)).fetchone():
                return "replay"
            try:
                self.db.execute(
                    "INSERT INTO events (delivery_id, dedupe_key, model, event_type, payload, source, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (delivery_id, dedupe_key, model, event_type, json.dumps(payload, sort_keys=True), source, time.time()),
                )
                return "stored"
            except sqlite3.IntegrityError:
                return "duplicate"

    def next_due(self, exclude: Iterable[str] = ()) -> sqlite3.Row | None:
        """The oldest queued event of a model whose head-of-line event is due, leaving out the models
        in ``exclude`` (their head event is being looked up): order per model holds."""
        skip = sorted(set(exclude))
        with self.lock:
            return self.db.execute(
                "SELECT e.* FROM events e JOIN (SELECT model, MIN(seq) AS seq FROM events WHERE status='queued' "
                f"GROUP BY model) h ON e.seq = h.seq WHERE e.next_attempt_at <= ? "
                f"{'AND e.model NOT IN (' + ','.join('?' * len(skip)) + ')' if skip else ''} "
                "ORDER BY e.next_attempt_at, e.seq LIMIT 1",
                (time.time(), *skip),
            ).fetchone()

    def mark(self, seq: int, status: str, error: str | None = None, retry_at: float | None = None) -> None:
        with self.lock:
            if status == "retry":
                self.db.execute("UPDATE events SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE seq=?",
                                (retry_at, error, seq))
            else:
                self.db.execute("UPDATE events SET status=?, attempts=attempts+1, forwarded_at=?, last_error=? WHERE seq=?",
                                (status, time.time(), error, seq))

    def update_payload(self, seq: int, payload: dict[str, Any]) -> None:
        with self.lock:
            self.db.execute("UPDATE events SET payload=? WHERE seq=?", (json.dumps(payload, sort_keys=True), seq))

    def failed(self) -> list[dict[str, Any]]:
        """Failed events, oldest first: id, model, event type, version, attempts, error, times."""
        with self.lock:
            rows = self.db.execute("SELECT * FROM events WHERE status='failed' ORDER BY seq").fetchall()
        events = []
        for row in rows:
            payload = json.loads(row["payload"])
            events.append({"id": row["seq"], "model": row["model"], "event_type": row["event_type"],
                           "version": payload.get("version"), "alias": payload.get("alias"), "source": row["source"],
                           "attempts": row["attempts"], "error": row["last_error"],
                           "received_at": row["received_at"], "failed_at": row["forwarded_at"]})
        return events

    def requeue(self, ids: list[int] | None) -> list[int]:
        """Queue failed events again (all of them when ``ids`` is None) with fresh attempts.
        ValueError naming the ids that are not failed events; then nothing changes."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if ids is None:
                    chosen = [r[0] for r in self.db.execute("SELECT seq FROM events WHERE status='failed' ORDER BY seq")]
                else:
                    wanted = sorted(set(ids))
                    found = {r[0]: r[1] for r in self.db.execute(
                        f"SELECT seq, status FROM events WHERE seq IN ({','.join('?' * len(wanted))})", wanted)}
                    wrong = [f"{i} ({found[i]})" if i in found else f"{i} (no such event)"
                             for i in wanted if found.get(i) != "failed"]
                    if wrong:
                        raise ValueError(", ".join(wrong))
                    chosen = wanted
                self.db.executemany("UPDATE events SET status='queued', attempts=0, next_attempt_at=0, forwarded_at=NULL "
                                    "WHERE seq=?", [(i,) for i in chosen])
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return chosen

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {row[0]: row[1] for row in self.db.execute("SELECT status, COUNT(*) FROM events GROUP BY status")}

    def known_keys(self) -> set[str]:
        with self.lock:
            return {row[0] for row in self.db.execute("SELECT dedupe_key FROM events")}


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, int] = {}

    def inc(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + by

    def render(self, store: Store) -> str:
        counts = store.counts()
        lines = ["# TYPE relay_queued gauge", f"relay_queued {counts.get('queued', 0)}",
                 "# TYPE relay_forwarded gauge", f"relay_forwarded {counts.get('forwarded', 0)}",
                 "# TYPE relay_failed gauge", f"relay_failed {counts.get('failed', 0)}"]
        with self.lock:
            for name, value in sorted(self.counters.items()):
                lines.append(f"relay_{name} {value}")
        return "\n".join(lines) + "\n"


# --- verification -------------------------------------------------------------------------------
def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """MLflow's scheme: v1,<base64 HMAC-SHA256 over "{delivery_id}.{timestamp}.{raw_body}">."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(settings: Settings, headers: Any, body: bytes) -> tuple[int, str] | None:
    """None if the delivery is authentic and fresh, else (status, reason)."""
    delivery_id, timestamp = headers.get("X-MLflow-Delivery-Id"), headers.get("X-MLflow-Timestamp")
    signature = headers.get("X-MLflow-Signature") or ""
    if not delivery_id or not timestamp or not signature:
        return 401, "missing_signature"
    if not hmac.compare_digest(sign(settings.secret, delivery_id, timestamp, body).encode(), signature.encode()):
        return 401, "bad_signature"
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return 401, "bad_timestamp"
    if age > settings.tolerance_seconds:
        return 401, "stale_timestamp"
    return None


class BadPayload(ValueError):
    """A signed body that is not an MLflow webhook envelope the relay can forward."""


def _text(data: dict[str, Any], key: str, required: bool = False) -> str | None:
    """A string field of the envelope's data (storable as UTF-8), or None when absent and optional."""
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadPayload(f"data.{key} must be a {'non-empty ' if required else ''}string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPayload(f"data.{key} is not valid Unicode") from None
    return value


def _version(data: dict[str, Any], required: bool) -> str:
    value = data.get("version")
    if value is None and not required:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit() or int(value) < 1:
        raise BadPayload("data.version must be a positive version number")
    return str(int(value))


def pull_request_of(version_tags: Any) -> str | None:
    """The pull request a version is a candidate of (``lifecycle.pull_request``), else None."""
    if not isinstance(version_tags, dict):
        return None
    value = version_tags.get(tags.PULL_REQUEST)
    return value if isinstance(value, str) and value else None


def parse_event(envelope: Any) -> tuple[str, str, dict[str, Any], str | None] | None:
    """(model, event_type, client_payload, dedupe_key) for the events the relay forwards; None for
    other events; BadPayload for a body that is not an MLflow webhook envelope."""
    if not isinstance(envelope, dict):
        raise BadPayload("the body must be a JSON object")
    entity, action = envelope.get("entity"), envelope.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise BadPayload("entity and action must be strings")
    kind = EVENT_TYPES.get((entity, action))
    if kind is None:
        return None
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise BadPayload("data must be a JSON object")
    name = _text(data, "name", required=True)
    if kind == "model-registered":
        payload = {"name": name, "version": _version(data, required=True), "source": _text(data, "source"),
                   "run_id": _text(data, "run_id")}
        candidate = pull_request_of(data.get("tags"))
        if candidate:
            payload["pull_request"] = candidate
        return name, kind, payload, f"registered:{name}:{payload['version']}"
    payload = {"name": name, "alias": _text(data, "alias", required=True), "version": _version(data, required=False),
               "action": action}
    return name, kind, payload, None  # alias events: every delivery counts


# --- HTTP intake ----------------------------------------------------------------------------------
def _max_connections(wanted: int) -> int:
    """``wanted``, but below the process's file-descriptor limit: a relay that runs out of
    descriptors cannot accept anyone, and cannot open its database or GitHub connections."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - _FD_RESERVE))


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # a thread blocked reading it sees the end of the stream
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    """A thread per connection, with at most ``max_connections`` of them. A connection is *waiting*
    until it has sent a request's head; one waiting longer than the request timeout is closed, and
    when the limit is reached a new connection closes the longest-waiting one (or is refused when
    none waits), so idle connections cannot starve deliveries."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, relay: "Relay") -> None:
        self.relay = relay
        self.max_connections = _max_connections(relay.settings.max_connections)
        self.connections_lock = threading.Lock()
        self.open_connections = 0
        self.waiting: dict[socket.socket, float] = {}
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            if self.open_connections >= self.max_connections:
                victim = min(self.waiting, key=self.waiting.__getitem__, default=None)
                if victim is None:
                    self.relay.metrics.inc('rejected{reason="too_many_connections"}')
                    self.shutdown_request(request)
                    return
                del self.waiting[victim]
                _shut(victim)
                self.relay.metrics.inc("idle_connections_closed_total")
            self.open_connections += 1
            self.waiting[request] = time.monotonic()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections -= 1
            self.waiting.pop(request, None)

    def service_actions(self) -> None:
        """Called by serve_forever twice a second: close connections that sent no request in time."""
        oldest = time.monotonic() - self.relay.settings.request_timeout_seconds
        with self.connections_lock:
            stale = [sock for sock, since in self.waiting.items() if since < oldest]
            for sock in stale:
                del self.waiting[sock]
        for sock in stale:
            _shut(sock)
            self.relay.metrics.inc("idle_connections_closed_total")

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("request from %s failed", client_address[0] if client_address else "?")


class _LookupPool:
    """MLflow look-ups on daemon threads. A ThreadPoolExecutor's threads are joined when the
    interpreter exits, so one look-up hung on MLflow (whose client retries for minutes) would keep
    a stopped relay from exiting; an abandoned look-up loses nothing, its event stays queued."""

    def __init__(self, threads: int) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = threads
        self.started = False  # on the first look-up (a relay without MLflow never makes one)
        self.lock = threading.Lock()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        with self.lock:
            if not self.started:
                self.started = True
                for number in range(self.threads):
                    threading.Thread(target=self._work, name=f"relay-lookup-{number}", daemon=True).start()
        future: Future = Future()
        self.jobs.put((future, function, args))
        return future

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.put(None)  # for the next thread
                return
            future, function, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued (its deadline passed)
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the dispatcher
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Cancel queued look-ups and let idle threads end; running ones are abandoned (never waited for)."""
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        self.jobs.put(None)  # each thread that takes it ends and passes it on


# --- the relay --------------------------------------------------------------------------------------
class Relay:
    """HTTP intake, forwarding dispatcher (with MLflow look-ups beside it) and reconciler around one Store."""

    def __init__(self, settings: Settings, store: Store, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.settings, self.store, self.metrics = settings, store, Metrics()
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.server = _Server((host, port), self._handler(), self)
        self._client = None
        self._client_lock = threading.Lock()
        self.lookup_pool = _LookupPool(max(1, settings.lookup_threads))
        # model -> (row, payload, future, deadline): head events whose MLflow look-up is under way
        self.lookups: dict[str, tuple[sqlite3.Row, dict[str, Any], Future, float]] = {}
        self.looked_up: set[int] = set()  # events whose payload already holds the look-up's answer
        self.skipped: set[str] = set()  # candidates counted (each once: a delivery or the reconciler)

    # --- intake -------------------------------------------------------------------------------
    def accept(self, headers: Any, body: bytes) -> tuple[int, str]:
        if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            return 415, "content_type"
        failure = verify(self.settings, headers, body)
        if failure:
            return failure
        try:
            envelope = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return 400, "bad_json"
        try:
            parsed = parse_event(envelope)
        except BadPayload as exc:
            log.warning("signed delivery %s refused: %s", headers.get("X-MLflow-Delivery-Id"), exc)
            return 400, "bad_payload"
        if parsed is None:
            return 202, "ignored_event"
        model, kind, payload, dedupe = parsed
        if payload.get("pull_request"):  # a candidate under review: its pull request's merge releases it
            self.skip_candidate(dedupe or "")
            return 202, "pull_request_candidate"
        delivery_id = headers.get("X-MLflow-Delivery-Id")
        outcome = self.store.add(delivery_id, dedupe or f"delivery:{delivery_id}", model, kind, payload, "webhook")
        if outcome == "replay":
            return 409, "replay"
        self.wake.set()
        return 200, outcome

    def _handler(self):
        relay = self
        server_lock = lambda: relay.server.connections_lock  # noqa: E731 - the server exists once serving

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = relay.settings.request_timeout_seconds  # per read and write on the socket

            def handle_one_request(self) -> None:
                with server_lock():  # waiting for a request head (again, on a kept-alive connection)
                    relay.server.waiting.setdefault(self.connection, time.monotonic())
                super().handle_one_request()

            def parse_request(self) -> bool:  # reads the request's head
                try:
                    return super().parse_request()
                finally:
                    with server_lock():
                        relay.server.waiting.pop(self.connection, None)

            def _send(self, status: int, text: str, content_type: str = "application/json") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _refuse(self, status: int, reason: str, message: str) -> None:
                """Answer without reading the body, and close: the connection's state is unknown."""
                relay.metrics.inc(f'rejected{{reason="{reason}"}}')
                self.close_connection = True
                self._send(status, json.dumps({"error": message, "status": reason}))

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, json.dumps({"ok": True, "queued": relay.store.counts().get("queued", 0)}))
                elif self.path == "/metrics":
                    self._send(200, relay.metrics.render(relay.store), "text/plain; version=0.0.4")
                else:
                    self._send(404, '{"error": "not found"}')

            def do_POST(self) -> None:
                if self.path != "/webhook":
                    self.close_connection = True
                    self._send(404, '{"error": "not found"}')
                    return
                lengths = [value.strip() for value in self.headers.get_all("Content-Length") or []]
                if self.headers.get("Transfer-Encoding") or not lengths:
                    self._refuse(411, "length_required", "send the body with a Content-Length")
                    return
                if len(set(lengths)) != 1 or not _LENGTH.fullmatch(lengths[0]):
                    self._refuse(400, "bad_length", "Content-Length must be one non-negative whole number")
                    return
                length = int(lengths[0])
                if length > relay.settings.max_body_bytes:
                    self._refuse(413, "too_large", "body too large")
                    return
                try:
                    body = self._read_body(length)
                except TimeoutError:
                    self._refuse(408, "timeout", "the request body did not arrive in time")
                    return
                if body is None:  # the client went away mid-body
                    self.close_connection = True
                    return
                try:
                    status, reason = relay.accept(self.headers, body)
                except Exception:  # noqa: BLE001 - e.g. the disk is full: MLflow retries a 500
                    log.exception("storing a delivery failed")
                    status, reason = 500, "internal_error"
                if status >= 400:
                    relay.metrics.inc(f'rejected{{reason="{reason}"}}')
                else:
                    relay.metrics.inc(f'accepted{{outcome="{reason}"}}')
                self._send(status, json.dumps({"status": reason}))

            def _read_body(self, length: int) -> bytes | None:
                """The body, within the request timeout as a whole (not per read: no trickling)."""
                deadline = time.monotonic() + relay.settings.request_timeout_seconds
                chunks, remaining = [], length
                while remaining:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("request body")
                    self.connection.settimeout(left)
                    chunk = self.rfile.read1(min(remaining, 1 << 16))
                    if not chunk:
                        return None
                    chunks.append(chunk)
                    remaining -= len(chunk)
                self.connection.settimeout(relay.settings.request_timeout_seconds)
                return b"".join(chunks)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    # --- forwarding ---------------------------------------------------------------------------
    def client(self):
        with self._client_lock:
            if self._client is None and self.settings.tracking_uri:
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.settings.tracking_uri,
                                            registry_uri=self.settings.tracking_uri)
            return self._client

    def needs_lookup(self, row: sqlite3.Row, payload: dict[str, Any]) -> bool:
        """A registration whose payload lacks run_id or source (MLflow sends run_id null for
        ``models:/m-...`` sources), not yet looked up; alias events are sent as they came."""
        return (row["event_type"] == "model-registered" and bool(self.settings.tracking_uri)
                and row["seq"] not in self.looked_up and (not payload.get("run_id") or not payload.get("source")))

    def _look_up(self, name: str, version: str) -> Any:
        return self.client().get_model_version(name, version)

    def forward_one(self, post: Callable[..., Any]) -> bool:
        """One step of the dispatcher: finish look-ups that are done or late, then take the next due
        event of a model that is not waiting for a look-up. False when there was nothing to do."""
        progressed = self._finish_lookups(post)
        row = self.store.next_due(exclude=self.lookups)
        if row is None:
            return progressed
        payload = json.loads(row["payload"])
        if self.needs_lookup(row, payload):
            future = self.lookup_pool.submit(self._look_up, payload["name"], payload["version"])
            future.add_done_callback(lambda _: self.wake.set())
            self.lookups[row["model"]] = (row, payload, future,
                                          time.monotonic() + self.settings.lookup_timeout_seconds)
        else:
            self.dispatch(row, payload, post)
        return True

    def _finish_lookups(self, post: Callable[..., Any]) -> bool:
        progressed = False
        for model, (row, payload, future, deadline) in list(self.lookups.items()):
            if future.done():
                del self.lookups[model]
                progressed = True
                try:
                    version = future.result()
                except Exception as exc:  # noqa: BLE001 - MLflow or the network
                    if registry.is_not_found(exc):
                        self.fail(row, "mlflow_not_found",
                                  f"MLflow has no version {payload['version']} of model {payload['name']!r} "
                                  f"(deleted, or never created): {_short(exc)}")
                    else:
                        self.retry(row, f"MLflow look-up failed: {type(exc).__name__}: {_short(exc)}")
                    continue
                payload = {**payload, "run_id": payload.get("run_id") or version.run_id,
                           "source": payload.get("source") or version.source}
                self.store.update_payload(row["seq"], payload)
                self.looked_up.add(row["seq"])
                self.dispatch(row, payload, post)
            elif time.monotonic() > deadline:
                del self.lookups[model]
                progressed = True
                future.cancel()  # if it has not started; a started one ends with MLflow's own timeout
                self.retry(row, f"MLflow look-up timed out after {self.settings.lookup_timeout_seconds:g} s")
        return progressed

    def dispatch(self, row: sqlite3.Row, payload: dict[str, Any], post: Callable[..., Any]) -> None:
        """POST one repository_dispatch and record the outcome."""
        try:
            response = post(
                f"{self.settings.github_api_url.rstrip('/')}/repos/{self.settings.github_repo}/dispatches",
                json={"event_type": row["event_type"], "client_payload": payload},
                headers={"Authorization": f"Bearer {self.settings.github_token}",
                         "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
                timeout=self.settings.github_timeout_seconds,
            )
            status, headers = response.status_code, response.headers
        except Exception as exc:  # noqa: BLE001 - network: retry later
            self.retry(row, f"GitHub unreachable: {type(exc).__name__}")
            return
        if 200 <= status < 300:
            self.store.mark(row["seq"], "forwarded")
            self.metrics.inc("forwarded_total")
            return
        message = _github_message(response)
        error = f"GitHub answered HTTP {status}{message}"
        if github.rate_limited(status, headers, message) or status in (408, 422, 429) or status >= 500:
            # 422 on this endpoint also means "the endpoint has been spammed": retry later
            self.retry(row, error, status, headers)
        elif status in (401, 403, 404):
            self.fail(row, f"github_{status}", error,
                      hint=f"the token cannot send repository_dispatch to {self.settings.github_repo} (it needs "
                           "contents: write there, and the repository must exist); fix the token or --github-repo")
        else:
            self.fail(row, f"github_{status}", error)

    def retry(self, row: sqlite3.Row, error: str, status: int = 0, headers: Any = None) -> None:
        attempts = row["attempts"] + 1
        if attempts >= self.settings.max_attempts:
            self.fail(row, "max_attempts", f"gave up after {attempts} attempts; the last: {error}")
            return
        delay = self.backoff(row["attempts"], status, headers or {})
        self.store.mark(row["seq"], "retry", error, time.time() + delay)
        self.metrics.inc("retried_total")
        log.info("event %s (%s of %r) will be retried in %.1f s: %s", row["seq"], row["event_type"], row["model"],
                 delay, error)

    def fail(self, row: sqlite3.Row, reason: str, error: str, hint: str | None = None) -> None:
        """Give the event up: it stays in the store as failed, its model's later events go on."""
        self.store.mark(row["seq"], "failed", f"{reason}: {error}")
        log.error("event %s (%s of %r) FAILED [%s]: %s%s; list failed events with `relay.py failed --db %s`, "
                  "send it again with `relay.py requeue --db %s --id %s`", row["seq"], row["event_type"], row["model"],
                  reason, error, f" ({hint})" if hint else "", self.store.path, self.store.path, row["seq"])
        self.metrics.inc(f'failed_total{{reason="{reason}"}}')

    def backoff(self, attempts: int, status: int, headers: Any) -> float:
        """Honour Retry-After and x-ratelimit-reset; otherwise exponential with jitter, capped."""
        if headers.get("Retry-After"):
            try:
                return min(3600.0, max(0.0, float(headers["Retry-After"])))
            except ValueError:
                pass
        if status in (403, 429) and headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return min(3600.0, max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 0.5)
            except ValueError:
                pass
        base = min(self.settings.max_backoff_seconds, 0.5 * 2 ** min(attempts, 10))
        return base * (0.5 + random.random() / 2)

    def worker(self) -> None:
        import requests

        session = requests.Session()
        while not self.stop_event.is_set():
            try:
                if not self.forward_one(session.post):
                    self.wake.wait(0.2)
                    self.wake.clear()
            except Exception:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("forwarding failed")
                time.sleep(1)

    # --- reconciliation -----------------------------------------------------------------------
    def skip_candidate(self, key: str) -> None:
        """Count a pull request's candidate once, whether a delivery or the reconciler met it first."""
        with self.metrics.lock:
            first = key not in self.skipped
            self.skipped.add(key)
        if first:
            self.metrics.inc("candidates_skipped_total")

    def reconcile_once(self) -> int:
        """Queue versions created since the relay first started that no delivery brought."""
        client = self.client()
        if client is None:
            return 0
        since_ms = int((self.store.started_at() - 5) * 1000)
        known = self.store.known_keys()
        names = self.settings.models or [m.name for m in _pages(client.search_registered_models, max_results=1000)
                                         if not m.name.endswith(".lifecycle-lock")]
        added = 0
        for name in names:
            recent = []
            for version in _pages(client.search_model_versions, registry.name_filter(name), max_results=200,
                                  order_by=["version_number DESC"]):
                if version.name != name:  # a LIKE filter (a name with both quote characters) may match others
                    continue
                if int(version.creation_timestamp or 0) < since_ms:
                    break  # newest first: the rest are older (and their pages are never fetched)
                recent.append(version)
            for version in reversed(recent):  # oldest first: order per model holds
                key = f"registered:{name}:{version.version}"
                if key in known:
                    continue
                if pull_request_of(version.tags):  # a candidate under review, as in accept()
                    self.skip_candidate(key)
                    continue
                payload = {"name": name, "version": str(version.version), "source": version.source,
                           "run_id": version.run_id}
                if self.store.add(None, key, name, "model-registered", payload, "reconciler") == "stored":
                    added += 1
        if added:
            self.metrics.inc("reconciled_total", added)
            self.wake.set()
        return added

    def reconciler(self) -> None:
        while not self.stop_event.wait(self.settings.reconcile_seconds):
            try:
                self.reconcile_once()
            except Exception:  # noqa: BLE001
                log.exception("reconciliation failed")

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.server.max_connections < self.settings.max_connections:
            log.warning("serving at most %d connections (the file-descriptor limit leaves no room for %d)",
                        self.server.max_connections, self.settings.max_connections)
        for target in (self.server.serve_forever, self.worker, self.reconciler):
            threading.Thread(target=target, daemon=True).start()
        if self.settings.tracking_uri:
            threading.Thread(target=self._first_reconcile, daemon=True).start()

    def _first_reconcile(self) -> None:
        try:
            self.reconcile_once()
        except Exception:  # noqa: BLE001
            log.exception("first reconciliation failed")

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        self.server.shutdown()
        self.server.server_close()
        self.lookup_pool.shutdown()


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _github_message(response: Any) -> str:
    try:
        message = response.json().get("message")
    except Exception:  # noqa: BLE001 - not JSON
        return ""
    return f" ({' '.join(str(message).split())[:200]})" if message else ""


def _pages(search: Any, *args: Any, **kwargs: Any) -> Any:
    """Every result of an MLflow search, page after page (one page holds at most ``max_results``:
    1,000 models, or 200 versions of one model registered while the relay was down)."""
    token = None
    while True:
        page = search(*args, page_token=token, **kwargs)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return
