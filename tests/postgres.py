"""A throw-away PostgreSQL cluster and an ``mlflow server --workers 4`` on it, for tests and benchmarks.

The sqlite server of ``model_lifecycle/edges/local_server.py`` serialises every write through one
file and one worker process; races there are milder than on a production registry. Here:

* ``start_cluster()`` runs ``initdb`` into a temp dir (``/tmp/mlflow-pg-*``, trust authentication,
  UTF-8, no fsync: nothing in it is meant to survive) and ``pg_ctl start`` on a free port of
  127.0.0.1, its Unix socket in the same dir. PostgreSQL refuses to run as root, so as root the
  dir is given to the ``postgres`` user and the server binaries run as that user.
* ``start_mlflow(cluster, ...)`` creates a database and starts ``mlflow server`` on it with 4 worker
  processes (``--workers``), in its own session like ``local_server.start``, and waits for /health.
  The server loads psycopg 3 for ``postgresql://`` (SQLAlchemy 2.1's default driver).
* uvicorn with ``--workers`` more than 1 binds the listening socket itself and loses TCP_NODELAY on
  every accepted connection (uvicorn 0.54, Kludex/uvicorn#3149): each keep-alive request after the
  first waits ~43 ms for the client's delayed ACK. A promotion makes 13 such requests. By default
  the server here gets TCP_NODELAY back (``nodelay=True``: a ``sitecustomize`` on its PYTHONPATH,
  written into the cluster's dir, sets it on every accepted TCP socket); ``nodelay=False`` runs
  the server exactly as MLflow ships it (the benchmark measures both).
* ``stop()`` kills the server's process group, stops the cluster (``pg_ctl stop -m immediate``) and
  removes its dir. A *reaper* process started with the cluster does the same if the process that
  started them dies without stopping them (a killed pytest worker leaves nothing running).

Where PostgreSQL is not installed, ``PostgresMissing`` names what to install (``make test`` and
``make postgres`` install it when run as root); callers fail with it, never skip.

    with postgres.start() as pg:          # cluster + server
        client = MlflowClient(pg.uri)      # http://127.0.0.1:PORT
        pg.cluster.sql("mlflow", "SELECT count(*) FROM model_versions")
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from model_lifecycle.edges import local_server  # noqa: E402
from model_lifecycle.edges.local_server import LocalServer, free_port, mlflow_executable  # noqa: E402

PG_USER = "postgres"  # the cluster's superuser, and the OS user that runs it when we are root
WORKERS = 4
INSTALL_HINT = ("PostgreSQL is not installed: the tests and benchmarks on PostgreSQL need its server binaries "
                "(initdb, pg_ctl) under /usr/lib/postgresql/<version>/bin or on PATH. Install the distribution's "
                "package `postgresql` (Debian/Ubuntu: apt-get install -y postgresql; Fedora: dnf install "
                "postgresql-server), or run `make postgres` (part of `make test`) as root, which installs it.")
# Settings of a cluster nobody keeps: no durability work, room for 4 workers' connection pools each.
SERVER_SETTINGS = {"listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off",
                   "full_page_writes": "off", "max_connections": "300"}


# Loaded by every Python process of the mlflow server (PYTHONPATH) when nodelay=True: asyncio sets
# TCP_NODELAY only on sockets whose ``proto`` is IPPROTO_TCP, and uvicorn's pre-bound listener (all
# --workers N > 1) has proto 0, as have the connections it accepts.
_NODELAY_HOOK = """\
import socket
import asyncio.base_events as _base_events


def _set_nodelay(sock):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_base_events._set_nodelay = _set_nodelay
"""


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed here."""


class PostgresFailed(RuntimeError):
    """The cluster or the mlflow server on it did not start."""


def bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: the newest /usr/lib/postgresql/*/bin (Debian, Ubuntu), else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.parent.name.split(".")])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise PostgresMissing(INSTALL_HINT)


def _as_owner() -> dict[str, Any]:
    """subprocess arguments that run a server binary as the cluster's owner (``postgres`` when we are root)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        raise PostgresMissing(f"running as root and there is no {PG_USER!r} user to run PostgreSQL as (it refuses "
                              f"root). {INSTALL_HINT}") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


# Stops what the cluster's owner left running when that owner dies: reads JSON lines on stdin (its
# parent holds the other end) and acts on end of file. Lines: {"stop": argv, "owner": {...},
# "remove": dir} once, {"pgid": n} per server started, {"done": true} when the owner cleaned up itself.
_REAPER = r"""
import json, os, shutil, signal, subprocess, sys
config, pgids, done = {}, [], False
for line in sys.stdin:
    item = json.loads(line)
    config.update(item.get("config", {}))
    if "pgid" in item:
        pgids.append(item["pgid"])
    done = done or item.get("done", False)
if not done:
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    owner = config.get("owner") or {}
    if config.get("stop"):
        subprocess.run(config["stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       cwd=config.get("remove"), **owner)
    if config.get("remove"):
        shutil.rmtree(config["remove"], ignore_errors=True)
"""


@dataclass
class Cluster:
    """A running throw-away PostgreSQL cluster; ``stop()`` stops it and removes its dir."""

    root: Path
    port: int
    bin: Path
    reaper: subprocess.Popen | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database (``postgresql://`` loads psycopg 3 with SQLAlchemy 2.1)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """A libpq connection string for psycopg."""
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        done = subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
                               name], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise PostgresFailed(f"createdb {name} failed: {done.stderr.strip()}")
        self.databases.append(name)
        return self.url(name)

    def sql(self, database: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement with psycopg (autocommit); its rows, if it returns any."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def _pg_ctl(self, *args: str) -> list[str]:
        return [str(self.bin / "pg_ctl"), "-D", str(self.data), *args]

    def watch(self, pgid: int) -> None:
        """Have the reaper kill this process group if the owner dies first."""
        self._tell({"pgid": pgid})

    def _tell(self, item: dict[str, Any]) -> None:
        if self.reaper is not None and self.reaper.stdin is not None:
            try:
                self.reaper.stdin.write(json.dumps(item) + "\n")
                self.reaper.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30"), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=self.root, timeout=60, **_as_owner())
        shutil.rmtree(self.root, ignore_errors=True)
        if self.reaper is not None:
            self._tell({"done": True})
            if self.reaper.stdin is not None:
                self.reaper.stdin.close()
            try:
                self.reaper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
            self.reaper = None

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(timeout: float = 60) -> Cluster:
    """initdb + pg_ctl start in a new temp dir on a free port; raises PostgresMissing or PostgresFailed."""
    binaries = bin_dir()
    owner = _as_owner()
    root = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))  # short: the socket path must stay under 107 bytes
    if owner:
        os.chown(root, owner["user"], owner["group"])
    os.chmod(root, 0o700)
    cluster = Cluster(root=root, port=0, bin=binaries)
    cluster.reaper = subprocess.Popen([sys.executable, "-c", _REAPER], stdin=subprocess.PIPE, text=True,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster._tell({"config": {"stop": cluster._pg_ctl("stop", "-m", "immediate", "-w"), "owner": owner,
                              "remove": str(root)}})
    try:
        done = subprocess.run([str(binaries / "initdb"), "-D", str(cluster.data), "-U", PG_USER, "--auth=trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"],
                              capture_output=True, text=True, cwd=root, timeout=timeout, **owner)
        if done.returncode != 0:
            raise PostgresFailed(f"initdb failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
        for attempt in range(3):  # the free port may be taken between asking and binding
            cluster.port = free_port()
            options = " ".join([f"-p {cluster.port}", f"-k {root}",
                                *(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items())])
            done = subprocess.run(cluster._pg_ctl("start", "-w", "-t", str(int(timeout)), "-l",
                                                  str(root / "postgres.log"), "-o", options),
                                  capture_output=True, text=True, cwd=root, timeout=timeout + 10, **owner)
            if done.returncode == 0:
                return cluster
        log = (root / "postgres.log").read_text(errors="replace")[-800:] if (root / "postgres.log").exists() else ""
        raise PostgresFailed(f"pg_ctl start failed (exit {done.returncode}): {done.stderr.strip()[-400:]} {log}")
    except BaseException:
        cluster.stop()
        raise


def start_mlflow(cluster: Cluster, artifacts: Path, *, database: str = "mlflow", workers: int = WORKERS,
                 env: dict[str, str] | None = None, nodelay: bool = True, timeout: float = 180) -> LocalServer:
    """Create ``database`` and start ``mlflow server --workers N`` on it (artifacts and log under
    ``artifacts``); wait for /health. Its ``stop()`` kills its process group, as local_server's does.
    ``nodelay``: give the server's connections TCP_NODELAY back (see the module's doc)."""
    artifacts = Path(artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    backend = cluster.create_database(database)
    port = free_port()
    log_path = artifacts / "server.log"
    command = [
        mlflow_executable(), "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", str(artifacts / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(workers),
    ]
    # As local_server: the GenAI job runners poll all the time and the registry does not need them.
    full_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    if nodelay:
        hooks = cluster.root / "nodelay-hook"
        hooks.mkdir(exist_ok=True)
        (hooks / "sitecustomize.py").write_text(_NODELAY_HOOK)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), full_env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                   start_new_session=True, cwd=artifacts)
    cluster.watch(process.pid)
    server = LocalServer(root=artifacts, port=port, process=process, log_path=log_path, extra_env=env or {})
    server.backend_store_uri = backend  # type: ignore[attr-defined]
    server.database = database  # type: ignore[attr-defined]
    return local_server.wait_healthy(server, timeout, "mlflow server on PostgreSQL", PostgresFailed, log_tail=True)


# --- a registry at scale: rows cloned from rows MLflow itself wrote -------------------------------------
#
# Creating 20,000 versions through REST takes most of an hour. These copy a version row (and a model
# row) that the server wrote for a real CreateModelVersion (CreateRegisteredModel) call, changing only
# the name, the version number and the timestamps: every other column holds exactly what MLflow
# writes. Nothing else is written for a version without tags (``create_model_version``: one
# ``model_versions`` row, and the model's ``last_updated_time``).

_VERSION_COLUMNS = ("description", "user_id", "current_stage", "source", "run_id", "status", "status_message",
                    "run_link", "storage_location", "workspace")


def clone_versions(cluster: Cluster, database: str, template: str, names: list[str], first: int, last: int,
                   *, step_ms: int = 0) -> int:
    """Give each model of ``names`` versions ``first..last``, copies of version 1 of model ``template``.
    Version ``v`` is created ``(last - v) * step_ms`` before the template (older versions older, as in a
    real registry). The models must exist. Returns the number of rows written."""
    columns = ", ".join(_VERSION_COLUMNS)
    copied = ", ".join(f"t.{c}" for c in _VERSION_COLUMNS)
    rows = cluster.sql(database, f"""
        WITH written AS (
            INSERT INTO model_versions (name, version, creation_time, last_updated_time, {columns})
            SELECT n.name, g, t.creation_time - (%(last)s::int - g) * %(step)s::bigint,
                   t.last_updated_time - (%(last)s::int - g) * %(step)s::bigint, {copied}
            FROM model_versions t, unnest(%(names)s::text[]) AS n(name),
                 generate_series(%(first)s::int, %(last)s::int) AS g
            WHERE t.name = %(template)s AND t.version = 1
            RETURNING 1)
        SELECT count(*) FROM written""", {"names": names, "first": first, "last": last, "step": step_ms,
                                          "template": template})
    cluster.sql(database, """
        UPDATE registered_models r SET last_updated_time = m.latest
        FROM (SELECT name, max(creation_time) AS latest FROM model_versions WHERE name = ANY(%(names)s::text[])
              GROUP BY name) m
        WHERE r.name = m.name AND r.last_updated_time < m.latest""", {"names": names})
    return int(rows[0][0])


def clone_models(cluster: Cluster, database: str, template: str, names: list[str]) -> int:
    """Create registered models ``names``, copies of model ``template``'s row (no versions, no tags)."""
    rows = cluster.sql(database, """
        WITH written AS (
            INSERT INTO registered_models (name, creation_time, last_updated_time, description, workspace)
            SELECT n.name, t.creation_time, t.last_updated_time, t.description, t.workspace
            FROM registered_models t, unnest(%(names)s::text[]) AS n(name)
            WHERE t.name = %(template)s
            RETURNING 1)
        SELECT count(*) FROM written""", {"names": names, "template": template})
    return int(rows[0][0])


@dataclass
class PostgresMlflow:
    """A cluster and one mlflow server on it."""

    cluster: Cluster
    server: LocalServer

    @property
    def uri(self) -> str:
        return self.server.uri

    @property
    def database(self) -> str:
        return self.server.database  # type: ignore[attr-defined]

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.cluster.sql(self.database, statement, params)

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            self.cluster.stop()

    def __enter__(self) -> "PostgresMlflow":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(artifacts: Path | None = None, *, workers: int = WORKERS, env: dict[str, str] | None = None,
          nodelay: bool = True) -> PostgresMlflow:
    """A new cluster and an mlflow server on it; artifacts in ``artifacts`` (default: inside the cluster's dir)."""
    cluster = start_cluster()
    try:
        server = start_mlflow(cluster, artifacts or cluster.root / "mlflow", workers=workers, env=env,
                              nodelay=nodelay)
    except BaseException:
        cluster.stop()
        raise
    return PostgresMlflow(cluster, server)


def _terminate_quietly(signum: int, frame: object) -> None:  # pragma: no cover - manual use
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover - `python tests/postgres.py`: a server to poke at by hand
    signal.signal(signal.SIGTERM, _terminate_quietly)
    with start() as running:
        print(f"MLFLOW_TRACKING_URI={running.uri}  backend {running.server.backend_store_uri}; Ctrl-C stops it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
