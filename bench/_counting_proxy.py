"""A counting HTTP reverse proxy for the benchmark: how many REST calls does an operation make?

MLflow's client gives no per-call hook that also covers a child process, so the benchmark points
the client at this proxy instead of the server. Every request (any method, path, query, headers,
body) is forwarded unchanged to the real server and its answer relayed back; each one is counted
under ``"<METHOD> <path>"`` with the time the server took to answer it. Loopback only.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that describe one connection, not the message: never forwarded either way.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host"}  # the upstream's own Host is set instead
_NOT_RELAYED = _HOP_BY_HOP | {"content-length", "date", "server"}  # set by this proxy's reply


@dataclass
class EndpointStats:
    """Calls to one ``METHOD /path`` and the server time they took (seconds)."""

    calls: int = 0
    server_seconds: float = 0.0


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:5000") as proxy:`` then use ``proxy.uri``."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        target = urlsplit(upstream)
        if target.scheme != "http" or not target.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host = target.hostname
        self.upstream_port = target.port or 80
        self._stats: dict[str, EndpointStats] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True)

    @property
    def uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "CountingProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "CountingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()

    def snapshot(self) -> dict[str, EndpointStats]:
        """A copy of the counts since the last ``reset()``, busiest endpoint first."""
        with self._lock:
            items = [(key, EndpointStats(s.calls, s.server_seconds)) for key, s in self._stats.items()]
        return dict(sorted(items, key=lambda item: (-item[1].calls, item[0])))

    def record(self, key: str, seconds: float) -> None:
        with self._lock:
            stats = self._stats.setdefault(key, EndpointStats())
            stats.calls += 1
            stats.server_seconds += seconds


def _handler_for(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the MLflow client's requests session expects

        def _forward(self) -> None:
            body = _read_body(self)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
            started = time.perf_counter()
            try:
                status, reason, reply_headers, reply = _call_upstream(proxy, self.command, self.path, headers, body)
            except OSError as exc:
                status, reason, reply_headers, reply = 502, "Bad Gateway", [], f"proxy: {exc}".encode()
            proxy.record(f"{self.command} {urlsplit(self.path).path}", time.perf_counter() - started)
            self.send_response(status, reason)
            for key, value in reply_headers:
                if key.lower() not in _NOT_RELAYED:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            try:
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):  # the client was killed meanwhile (Ctrl-C)
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence access logs
            pass

    return Handler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline().strip():  # trailers, up to the empty line
            pass
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _call_upstream(
    proxy: CountingProxy, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
    try:
        connection.request(method, path, body=body if body or method in ("POST", "PUT", "PATCH") else None,
                           headers=headers)
        response = connection.getresponse()
        return response.status, response.reason, response.getheaders(), response.read()
    finally:
        connection.close()
