"""Serving that follows an alias: MLflow's own scoring app per version, switched atomically.

Each loaded version gets its own ``mlflow.pyfunc.scoring_server.init(model)`` app (``/invocations``
in every MLflow input format, its schema enforcement and its 400 answers). The ``AliasServer``
ASGI app in front of it reads the current version once per request, so a request in flight
finishes on the version it started with while a new one is swapped in; a version that fails to
load is never switched to. Every answer carries ``X-Model-Version``; ``/health`` says what is
served, since when, and the alias followed; ``/metrics`` is Prometheus text; ``POST /-/reload``
(loopback only) re-resolves the alias at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("model_lifecycle.serve")

VERSION_HEADER = b"x-model-version"
REQUEST_ID_HEADER = b"x-request-id"


@dataclass(frozen=True)
class Served:
    """One loaded version: its pyfunc model, the scoring app built on it, and its downloaded files."""

    version: str
    model: Any
    app: Any
    since: float  # epoch seconds when it started serving
    folder: str | None = None  # the download, removed when the version is dropped

    def drop(self) -> None:
        if self.folder:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)


def load_version(model_name: str, version: str) -> Served:
    """Load ``models:/<name>/<version>`` into a folder of its own and build MLflow's scoring app on it
    (slow: done off the request path)."""
    import tempfile

    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    folder = tempfile.mkdtemp(prefix=f"serve-{version}-")
    try:
        model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}", dst_path=folder)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Served(version, model, scoring_server.init(model), time.time(), folder)


class Metrics:
    """Prometheus metrics of one server, in a registry of its own."""

    def __init__(self, capture_stats: Callable[[], Any] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("model_requests", "Scoring requests by version and outcome",
                                ["version", "outcome"], registry=self.registry)
        self.latency = Histogram("model_request_latency_seconds", "Latency of /invocations by version",
                                 ["version"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.served = Gauge("model_version_served", "The version served (1 for the current one)",
                            ["version"], registry=self.registry)
        self.reloads = Counter("model_reloads", "Alias resolutions that changed or failed to change the version",
                               ["outcome"], registry=self.registry)
        if capture_stats is not None:
            self.registry.register(_CaptureCollector(capture_stats))

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _CaptureCollector:
    def __init__(self, stats: Callable[[], Any]) -> None:
        self.stats = stats

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        stats = self.stats()
        yield CounterMetricFamily("model_capture_records_written", "Captured records written", value=stats.written)
        dropped = CounterMetricFamily("model_capture_records_dropped", "Captured records dropped", labels=["reason"])
        dropped.add_metric(["queue_full"], stats.dropped_queue_full)
        dropped.add_metric(["write_error"], stats.dropped_write_error)
        dropped.add_metric(["parse_error"], stats.parse_errors)
        yield dropped


class AliasFollower:
    """Resolves ``models:/<name>@<alias>`` every ``poll_seconds`` (and on demand) and swaps versions."""

    def __init__(self, client: Any, model_name: str, alias: str, poll_seconds: float,
                 loader: Callable[[str, str], Served] = load_version, metrics: Metrics | None = None) -> None:
        self.client = client
        self.model_name = model_name
        self.alias = alias
        self.poll_seconds = poll_seconds
        self.loader = loader
        self.metrics = metrics
        self.current: Served | None = None
        self.previous: Served | None = None  # kept loaded: a rollback to it switches at once
        self.last_error: str | None = None
        self.last_checked: float | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"follow-{alias}", daemon=True)

    def model_for(self, version: str) -> Any:
        """The loaded model of ``version`` (the current or the previous one), for parsing a captured
        request with the schema of the version that answered it; the current model otherwise."""
        for served in (self.current, self.previous):
            if served is not None and served.version == version:
                return served.model
        return self.current.model if self.current is not None else None

    def resolve(self) -> str:
        from model_lifecycle.adapters.registry import mlflow_errors

        with mlflow_errors(not_found=f"model {self.model_name!r} has no alias @{self.alias}"):
            return str(self.client.get_model_version_by_alias(self.model_name, self.alias).version)

    def refresh(self) -> dict[str, Any]:
        """Re-resolve the alias; load and switch to a new version. Never leaves nothing served."""
        with self._refresh_lock:
            self.last_checked = time.time()
            try:
                version = self.resolve()
            except Exception as exc:  # noqa: BLE001 - keep serving what we have; say why in /health
                self.last_error = f"could not resolve @{self.alias}: {exc}"
                log.warning(self.last_error)
                return {"changed": False, "error": self.last_error}
            if self.current is not None and self.current.version == version:
                return {"changed": False, "version": version}
            warm = self.previous if self.previous is not None and self.previous.version == version else None
            if warm is not None:  # a rollback to the version served before: no download, no load
                loaded = Served(version, warm.model, warm.app, time.time(), warm.folder)
            else:
                try:
                    loaded = self.loader(self.model_name, version)
                except Exception as exc:  # noqa: BLE001 - a version that cannot load is never switched to
                    self.last_error = f"v{version} failed to load: {type(exc).__name__}: {exc}"
                    log.error("%s; still serving v%s", self.last_error, self.current.version if self.current else "-")
                    if self.metrics:
                        self.metrics.reloads.labels("failed").inc()
                    return {"changed": False, "error": self.last_error}
            previous, self.current, self.last_error = self.current, loaded, None  # the atomic switch
            evicted, self.previous = (self.previous if warm is None else None), previous
            if evicted is not None:
                evicted.drop()  # two versions stay loaded: the current one and the one before it
            if self.metrics:
                self.metrics.reloads.labels("switched").inc()
                if previous is not None:
                    self.metrics.served.labels(previous.version).set(0)
                self.metrics.served.labels(version).set(1)
            log.info("now serving %s v%s (@%s)", self.model_name, version, self.alias)
            return {"changed": True, "version": version, "previous": previous.version if previous else None}

    def start(self) -> "AliasFollower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()


class PinnedVersion(AliasFollower):
    """One fixed version (``serve --version N``): nothing to follow."""

    def __init__(self, client: Any, model_name: str, version: str, poll_seconds: float, **kwargs: Any) -> None:
        super().__init__(client, model_name, f"v{version}", poll_seconds, **kwargs)
        self.version = version

    def resolve(self) -> str:
        return self.version


class AliasServer:
    """The ASGI app: routes to the current version's scoring app, adds headers, metrics and capture."""

    def __init__(self, follower: AliasFollower, metrics: Metrics, capture: Any = None,
                 shadow: AliasFollower | None = None, shadow_fraction: float = 0.0) -> None:
        self.follower = follower
        self.metrics = metrics
        self.capture = capture
        self.shadow = shadow
        self.shadow_fraction = shadow_fraction
        self._random = random.Random()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path == "/health" and method == "GET":
            await _json(send, 200 if self.follower.current else 503, self.health())
            return
        if path == "/metrics" and method == "GET":
            await _respond(send, 200, self.metrics.text(), b"text/plain; version=0.0.4")
            return
        if path == "/-/reload":
            await self._reload(scope, method, send)
            return
        served = self.follower.current  # read once: this request finishes on this version
        if served is None:
            await _json(send, 503, {"error": "no version loaded yet"})
            return
        if path == "/invocations" and method == "POST":
            await self._invoke(served, scope, receive, send)
            return
        await served.app(scope, receive, _with_headers(send, [(VERSION_HEADER, served.version.encode())]))

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        """On shutdown (SIGTERM), stop following and flush the capture queue before the process ends."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.follower.stop()
                if self.shadow is not None:
                    self.shadow.stop()
                if self.capture is not None:
                    await asyncio.to_thread(self.capture.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def health(self) -> dict[str, Any]:
        current = self.follower.current
        body: dict[str, Any] = {
            "model": self.follower.model_name, "alias": self.follower.alias,
            "version": current.version if current else None,
            "since": _iso(current.since) if current else None,
            "last_checked": _iso(self.follower.last_checked) if self.follower.last_checked else None,
            "poll_seconds": self.follower.poll_seconds,
        }
        if self.follower.last_error:
            body["last_error"] = self.follower.last_error
        if self.shadow is not None:
            body["shadow"] = {"alias": self.shadow.alias,
                              "version": self.shadow.current.version if self.shadow.current else None,
                              "fraction": self.shadow_fraction}
        if self.capture is not None:
            body["capture"] = vars(self.capture.stats).copy()
        return body

    async def _reload(self, scope: dict, method: str, send: Callable) -> None:
        client = (scope.get("client") or ("", 0))[0]
        if method != "POST":
            await _json(send, 405, {"error": "use POST"})
            return
        if client not in ("127.0.0.1", "::1", "localhost"):
            await _json(send, 403, {"error": "reload is accepted from loopback only"})
            return
        result = await asyncio.to_thread(self.follower.refresh)
        if self.shadow is not None:
            result["shadow"] = await asyncio.to_thread(self.shadow.refresh)
        await _json(send, 200, result)

    async def _invoke(self, served: Served, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        request_id = _header(scope, REQUEST_ID_HEADER) or uuid.uuid4().hex
        body = bytearray()

        async def teed_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        status = {"code": 500}
        response = bytearray()

        async def teed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (VERSION_HEADER, served.version.encode()),
                                      (REQUEST_ID_HEADER, request_id.encode())]
            elif message["type"] == "http.response.body" and self.capture is not None:
                response.extend(message.get("body", b""))
            await send(message)

        await served.app(scope, teed_receive, teed_send)
        seconds = time.perf_counter() - started
        code = status["code"]
        outcome = "ok" if code < 400 else "client_error" if code < 500 else "server_error"
        self.metrics.requests.labels(served.version, outcome).inc()
        self.metrics.latency.labels(served.version).observe(seconds)
        if self.capture is not None and code < 400:
            from model_lifecycle.adapters.capture import Captured

            shadow = self.shadow.current if self.shadow is not None else None
            wants_shadow = shadow is not None and self._random.random() < self.shadow_fraction
            self.capture.offer(Captured(
                request_id, time.time(), served.version, seconds * 1000, bytes(body),
                _header(scope, b"content-type") or "application/json", bytes(response),
                shadow_version=shadow.version if wants_shadow else None))


def parse_request(served_model: Any, item: Any) -> Any:
    """A captured request body as the DataFrame the model saw (MLflow's own parsing, off the path)."""
    import io

    from mlflow.pyfunc import scoring_server

    schema = served_model.metadata.get_input_schema() if served_model is not None else None
    mime = item.content_type.split(";")[0].strip()
    if mime == "text/csv":
        return scoring_server.parse_csv_input(io.StringIO(item.body.decode("utf-8")), schema=schema)
    if mime == "application/x-parquet":
        return scoring_server.parse_parquet_input(item.body)
    payload = json.loads(item.body)
    payload.pop("params", None)
    return scoring_server.infer_and_parse_data(payload, schema)


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _with_headers(send: Callable, extra: list[tuple[bytes, bytes]]) -> Callable:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _respond(send: Callable, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Callable, status: int, payload: Any) -> None:
    await _respond(send, status, json.dumps(payload, default=str).encode(), b"application/json")


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
