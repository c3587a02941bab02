"""Serve the version behind an alias, follow the alias, capture every prediction, shadow the challenger.

``prepare`` checks everything that can be bad input before anything listens (the model and the
alias exist, the port is free, the capture folder is writable) and loads the first version;
``run`` serves until stopped. See ``core.serving`` for the switch and ``adapters.capture`` for
the capture files.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from model_lifecycle import tags
from model_lifecycle.adapters import registry
from model_lifecycle.errors import BadInput


@dataclass(frozen=True)
class ServeRequest:
    model: str
    alias: str = tags.CHAMPION_ALIAS
    host: str = "127.0.0.1"
    port: int = 8080
    poll_seconds: float = 30.0
    capture_dir: str | None = None  # local folder or s3://, gs://, ... (pyarrow filesystems)
    capture_sample: float = 1.0
    capture_exclude: tuple[str, ...] = ()  # input columns never stored (personal data)
    capture_queue: int = 10_000
    shadow_alias: str | None = None
    shadow_fraction: float = 0.0
    tracking_uri: str | None = None
    version: str | None = None  # serve this version, not the alias (the staging check of one version)


@dataclass
class ServingStack:
    """What ``prepare`` built: run it with ``run(stack)``."""

    request: ServeRequest
    app: Any
    follower: Any
    shadow: Any = None
    capture: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_port(host: str, port: int) -> None:
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise BadInput(f"--port {port} on {host} cannot be used: {exc.strerror or exc}",
                       hint="pick a free port, or stop what listens there") from None
    finally:
        probe.close()


def prepare(request: ServeRequest) -> ServingStack:
    from model_lifecycle.adapters.capture import CaptureWriter
    from model_lifecycle.core import serving

    if not 0 < request.port < 65536:
        raise BadInput(f"--port must be between 1 and 65535, got {request.port}")
    if not request.poll_seconds > 0:
        raise BadInput(f"--poll-seconds must be positive, got {request.poll_seconds}")
    if not 0 < request.capture_sample <= 1:
        raise BadInput(f"--capture-sample must be in (0, 1], got {request.capture_sample}")
    if not 0 <= request.shadow_fraction <= 1:
        raise BadInput(f"--shadow-fraction must be in [0, 1], got {request.shadow_fraction}")
    if request.shadow_alias and not request.capture_dir:
        raise BadInput("--shadow-alias needs --capture-dir: shadow predictions are captured, never served")
    registry.validate_alias(request.alias, "--alias")
    _check_port(request.host, request.port)
    capture = None
    if request.capture_dir:
        capture = CaptureWriter(request.capture_dir, sample=request.capture_sample,
                                exclude_columns=tuple(request.capture_exclude), queue_size=request.capture_queue)
        try:
            capture.check_writable()
        except Exception as exc:  # noqa: BLE001 - any filesystem error here is the folder's fault
            raise BadInput(f"--capture-dir {request.capture_dir!r} cannot be written: {exc}") from None
    client = registry.connect(request.tracking_uri)
    registry.get_model(client, request.model)  # a missing model is named as such
    metrics = serving.Metrics(capture_stats=(lambda: capture.stats) if capture else None)
    if request.version:
        version = registry.parse_version(request.version)
        registry.get_version(client, request.model, version)
        follower = serving.PinnedVersion(client, request.model, version, request.poll_seconds, metrics=metrics)
    else:
        follower = serving.AliasFollower(client, request.model, request.alias, request.poll_seconds, metrics=metrics)
    follower.resolve()  # bad input (unknown alias) before anything listens
    first = follower.refresh()
    if follower.current is None:
        raise BadInput(f"{request.model}@{request.alias} cannot be served: {first.get('error')}")
    shadow = None
    if request.shadow_alias:
        registry.validate_alias(request.shadow_alias, "--shadow-alias")
        shadow = serving.AliasFollower(client, request.model, request.shadow_alias, request.poll_seconds)
        shadow.refresh()  # a missing challenger is not fatal: shadowing resumes when the alias appears
    if capture is not None:
        capture.parse = lambda item: serving.parse_request(follower.model_for(item.version), item)
        if shadow is not None:
            capture.on_batch = lambda batch: _score_shadow(shadow, batch)
        capture.start()
    app = serving.AliasServer(follower, metrics, capture, shadow, request.shadow_fraction)
    return ServingStack(request, app, follower, shadow, capture)


def _score_shadow(shadow: Any, batch: list[Any]) -> None:
    """Off the request path: the challenger scores the sampled requests of a capture batch."""
    from model_lifecycle.core import serving

    current = shadow.current
    if current is None:
        return
    for item in batch:
        if item.shadow_version and item.shadow_version == current.version:
            try:
                item.shadow_response = current.model.predict(serving.parse_request(current.model, item))
            except Exception:  # noqa: BLE001 - a failing shadow never affects the champion's records
                item.shadow_response = None


def run(stack: ServingStack) -> None:
    """Serve until SIGINT/SIGTERM; the capture queue is flushed on the way out (lifespan shutdown)."""
    import uvicorn

    stack.follower.start()
    if stack.shadow is not None:
        stack.shadow.start()
    config = uvicorn.Config(stack.app, host=stack.request.host, port=stack.request.port, log_level="warning",
                            access_log=False, lifespan="on")
    _server_class()(config).run()  # the app's lifespan shutdown flushes the capture queue


def _server_class() -> Any:
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, so a clean stop would exit -15;
        a supervisor should see 0 for a stop that flushed everything."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server
