"""Start and stop a local ``mlflow server`` on a sqlite store, for the demo, the tests and the benchmarks.

The server is started in its own session (``setsid``) because it spawns helper processes; stopping
kills the whole process group so nothing is left listening.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from model_lifecycle.errors import ServiceError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_executable() -> str:
    """The ``mlflow`` next to this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("mlflow")
    if beside.exists():
        return str(beside)
    found = shutil.which("mlflow")
    if not found:
        raise ServiceError(
            "the mlflow server is not installed here",
            hint="install the development requirements: make setup",
        )
    return found


@dataclass
class LocalServer:
    """A running server; ``stop()`` kills its process group."""

    root: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # helper processes may outlive the leader for a moment
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(root: Path, port: int | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> LocalServer:
    """Start ``mlflow server`` with its sqlite store and artifacts under ``root``; wait for /health."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = root / "server.log"
    command = [
        mlflow_executable(), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]
    # The server's background job runners (huey consumers for GenAI jobs) poll and use CPU all the
    # time; the registry and tracking APIs do not need them.
    full_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    log = open(log_path, "ab")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, cwd=root
    )
    log.close()
    server = LocalServer(root=root, port=port, process=process, log_path=log_path, extra_env=env or {})
    return wait_healthy(server, timeout)


def wait_healthy(server: LocalServer, timeout: float, what: str = "mlflow server",
                 error: type[Exception] = ServiceError, log_tail: bool = False) -> LocalServer:
    """The started server once it answers /health; ``error`` if it exits (naming its log, or quoting
    its tail) or stays silent for ``timeout`` s, and the server stopped on any failure."""
    process, log_path = server.process, server.log_path
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                detail = f": {log_path.read_text(errors='replace')[-1500:]}" if log_tail else f"; see {log_path}"
                raise error(f"{what} exited at start (code {process.returncode}){detail}")
            try:
                with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return server
            except OSError:
                time.sleep(0.25)
        raise error(f"{what} did not answer /health within {timeout:.0f}s; see {log_path}")
    except BaseException:  # including Ctrl-C while waiting: never leave a server behind
        server.stop()
        raise
