"""The registration relay: MLflow webhook deliveries in, GitHub repository_dispatch out, nothing lost.

MLflow drops a webhook after three retries, keeps no delivery log, and loses queued events on a
restart. The relay therefore:
* verifies each delivery (HMAC-SHA256 signature, constant-time; timestamp tolerance; replayed
  delivery ids; body size; content type) and stores it in sqlite *before* answering 200;
* forwards stored events from one worker thread, oldest first and one at a time per model (so
  order per model holds), retrying with backoff that honours GitHub's rate-limit headers;
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
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

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


class Store:
    """sqlite in WAL mode; every write commits before the caller answers anyone."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        with self.lock:
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('started_at', ?)", (str(time.time()),))

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

    def next_due(self) -> sqlite3.Row | None:
        """The oldest queued event of a model whose head-of-line event is due: order per model holds."""
        with self.lock:
            self.db.row_factory = sqlite3.Row
            return self.db.execute(
                "SELECT e.* FROM events e JOIN (SELECT model, MIN(seq) AS seq FROM events WHERE status='queued' "
                "GROUP BY model) h ON e.seq = h.seq WHERE e.next_attempt_at <= ? ORDER BY e.next_attempt_at, e.seq LIMIT 1",
                (time.time(),),
            ).fetchone()

    def mark(self, seq: int, status: str, error: str | None = None, retry_at: float | None = None) -> None:
        with self.lock:
            if status == "retry":
                self.db.execute("UPDATE events SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE seq=?",
                                (retry_at, error, seq))
            else:
                self.db.execute("UPDATE events SET status=?, attempts=attempts+1, forwarded_at=?, last_error=? WHERE seq=?",
                                (status, time.time(), error, seq))

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.db.execute("SELECT status, COUNT(*) FROM events GROUP BY status").fetchall())

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


def parse_event(envelope: dict[str, Any]) -> tuple[str, str, dict[str, Any], str] | None:
    """(model, event_type, client_payload, dedupe_key) for the events the relay forwards."""
    kind = EVENT_TYPES.get((envelope.get("entity"), envelope.get("action")))
    data = envelope.get("data") or {}
    if kind is None or not data.get("name"):
        return None
    if kind == "model-registered":
        payload = {"name": data["name"], "version": str(data.get("version")), "source": data.get("source"),
                   "run_id": data.get("run_id")}
        return data["name"], kind, payload, f"registered:{data['name']}:{payload['version']}"
    payload = {"name": data["name"], "alias": data.get("alias"), "version": str(data.get("version") or ""),
               "action": envelope.get("action")}
    return data["name"], kind, payload, None  # alias events: every delivery counts


class Relay:
    """HTTP intake, forwarding worker and reconciler around one Store."""

    def __init__(self, settings: Settings, store: Store, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.settings, self.store, self.metrics = settings, store, Metrics()
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._client = None

    # --- intake -------------------------------------------------------------------------------
    def accept(self, headers: Any, body: bytes) -> tuple[int, str]:
        if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            return 415, "content_type"
        failure = verify(self.settings, headers, body)
        if failure:
            return failure
        try:
            envelope = json.loads(body)
        except json.JSONDecodeError:
            return 400, "bad_json"
        parsed = parse_event(envelope)
        if parsed is None:
            return 202, "ignored_event"
        model, kind, payload, dedupe = parsed
        delivery_id = headers.get("X-MLflow-Delivery-Id")
        outcome = self.store.add(delivery_id, dedupe or f"delivery:{delivery_id}", model, kind, payload, "webhook")
        if outcome == "replay":
            return 409, "replay"
        self.wake.set()
        return 200, outcome

    def _handler(self):
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, text: str, content_type: str = "application/json") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, json.dumps({"ok": True, "queued": relay.store.counts().get("queued", 0)}))
                elif self.path == "/metrics":
                    self._send(200, relay.metrics.render(relay.store), "text/plain; version=0.0.4")
                else:
                    self._send(404, '{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > relay.settings.max_body_bytes:
                    relay.metrics.inc('rejected{reason="too_large"}')
                    self.close_connection = True
                    self._send(413, '{"error": "body too large"}')
                    return
                body = self.rfile.read(length)
                if self.path != "/webhook":
                    self._send(404, '{"error": "not found"}')
                    return
                status, reason = relay.accept(self.headers, body)
                if status >= 400:
                    relay.metrics.inc(f'rejected{{reason="{reason}"}}')
                else:
                    relay.metrics.inc(f'accepted{{outcome="{reason}"}}')
                self._send(status, json.dumps({"status": reason}))

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    # --- forwarding ---------------------------------------------------------------------------
    def client(self):
        if self._client is None and self.settings.tracking_uri:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)
        return self._client

    def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The webhook's run_id is null for models:/m-... registrations: look the version up."""
        if payload.get("version") and (not payload.get("run_id") or not payload.get("source")) and self.client():
            version = self.client().get_model_version(payload["name"], payload["version"])
            payload = {**payload, "run_id": payload.get("run_id") or version.run_id,
                       "source": payload.get("source") or version.source}
        return payload

    def forward_one(self, post: Callable[..., Any]) -> bool:
        row = self.store.next_due()
        if row is None:
            return False
        payload = json.loads(row["payload"])
        try:
            payload = self.complete(payload)
            response = post(
                f"{self.settings.github_api_url.rstrip('/')}/repos/{self.settings.github_repo}/dispatches",
                json={"event_type": row["event_type"], "client_payload": payload},
                headers={"Authorization": f"Bearer {self.settings.github_token}",
                         "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
                timeout=15,
            )
            status, headers = response.status_code, response.headers
        except Exception as exc:  # noqa: BLE001 - network or MLflow: retry later
            status, headers = 0, {}
            error = type(exc).__name__
        else:
            error = f"HTTP {status}"
        if 200 <= status < 300:
            self.store.mark(row["seq"], "forwarded")
            self.metrics.inc("forwarded_total")
            return True
        if status in (400, 401, 404, 410, 422):
            self.store.mark(row["seq"], "failed", error)
            self.metrics.inc("failed_total")
            log.error("dispatch of event %s refused permanently: %s", row["seq"], error)
            return True
        self.store.mark(row["seq"], "retry", error, time.time() + self.backoff(row["attempts"], status, headers))
        self.metrics.inc("retried_total")
        return True

    def backoff(self, attempts: int, status: int, headers: Any) -> float:
        """Honour Retry-After and x-ratelimit-reset; otherwise exponential with jitter, capped."""
        if headers.get("Retry-After"):
            try:
                return float(headers["Retry-After"])
            except ValueError:
                pass
        if status in (403, 429) and headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 0.5
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
    def reconcile_once(self) -> int:
        """Queue versions created since the relay first started that no delivery brought."""
        client = self.client()
        if client is None:
            return 0
        since_ms = int((self.store.started_at() - 5) * 1000)
        known = self.store.known_keys()
        names = self.settings.models or [m.name for m in client.search_registered_models(max_results=1000)
                                         if not m.name.endswith(".lifecycle-lock")]
        added = 0
        for name in names:
            quoted = name.replace("\\", "\\\\").replace("'", "\\'")
            recent = []
            for version in client.search_model_versions(f"name = '{quoted}'", max_results=200,
                                                        order_by=["version_number DESC"]):
                if int(version.creation_timestamp or 0) < since_ms:
                    break
                recent.append(version)
            for version in reversed(recent):  # oldest first: order per model holds
                key = f"registered:{name}:{version.version}"
                if key in known:
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
