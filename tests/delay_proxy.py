"""A forwarding HTTP proxy for race tests: it logs every REST call and holds back chosen ones.

The MLflow client (also in a child process) is pointed at ``proxy.uri`` instead of the server.
Every request is forwarded unchanged and its answer relayed back, like ``bench/_counting_proxy.py``
(whose ideas this copies; tests do not import bench code). A *hold* delays one call, chosen as
the n-th call to ``METHOD /path`` since the proxy started:

* ``phase="request"``: the request waits in the proxy before it reaches the server, so it lands
  late (what a congested network or a stalled client does to a write already sent);
* ``phase="reply"``: the server handles the request at once and the answer waits, so the client
  sees a slow reply (and, past its timeout, retries a request the server already applied);
* ``phase="drop"``: the request never reaches the server and the client waits for ever (kill it
  then: a process that died with a write it never got to make).

``proxy.calls`` lists ``"METHOD /path"`` of every call in arrival order: the log of one promotion
is how the tests find the REST calls to hold back. Loopback only.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host"}
_NOT_RELAYED = _HOP_BY_HOP | {"content-length", "date", "server"}


@dataclass
class Hold:
    """Delay the ``nth`` call (1-based) to ``key`` (``"METHOD /path"``) by ``seconds``."""

    key: str
    nth: int = 1
    seconds: float = 3.0
    phase: str = "request"  # or "reply", or "drop"
    seen: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)  # set when the held call arrives
    released: threading.Event = field(default_factory=threading.Event)  # set once the held call went on


class DelayProxy:
    """``with DelayProxy(server_uri) as proxy:`` then point a client at ``proxy.uri``."""

    def __init__(self, upstream: str, holds: list[Hold] | None = None) -> None:
        target = urlsplit(upstream)
        if target.scheme != "http" or not target.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host = target.hostname
        self.upstream_port = target.port or 80
        self.holds = list(holds or [])
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="delay-proxy", daemon=True)

    @property
    def uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def hold(self, key: str, nth: int = 1, seconds: float = 3.0, phase: str = "request") -> Hold:
        held = Hold(key, nth, seconds, phase)
        with self._lock:
            self.holds.append(held)
        return held

    def start(self) -> "DelayProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "DelayProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _arrived(self, key: str) -> list[Hold]:
        """Log the call; the holds that apply to it."""
        with self._lock:
            self.calls.append(key)
            matched = []
            for held in self.holds:
                if held.key == key:
                    held.seen += 1
                    if held.seen == held.nth:
                        held.arrived.set()
                        matched.append(held)
            return matched


def _handler_for(proxy: DelayProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = _read_body(self)
            key = f"{self.command} {urlsplit(self.path).path}"
            holds = proxy._arrived(key)
            if any(held.phase == "drop" for held in holds):
                proxy._stopped.wait()
                self.close_connection = True
                return
            for held in holds:
                if held.phase == "request":
                    time.sleep(held.seconds)
                    held.released.set()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
            try:
                status, reason, reply_headers, reply = _call_upstream(proxy, self.command, self.path, headers, body)
            except OSError as exc:
                status, reason, reply_headers, reply = 502, "Bad Gateway", [], f"proxy: {exc}".encode()
            for held in holds:
                if held.phase == "reply":
                    time.sleep(held.seconds)
                    held.released.set()
            try:
                self.send_response(status, reason)
                for name, value in reply_headers:
                    if name.lower() not in _NOT_RELAYED:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply)
            except OSError:  # the client gave up meanwhile (timeout) or was killed
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline().strip():
            pass
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _call_upstream(proxy: DelayProxy, method: str, path: str, headers: dict[str, str], body: bytes):
    connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
    try:
        connection.request(method, path, body=body if body or method in ("POST", "PUT", "PATCH") else None,
                           headers=headers)
        response = connection.getresponse()
        return response.status, response.reason, response.getheaders(), response.read()
    finally:
        connection.close()
