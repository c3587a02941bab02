"""The virtual environment the repository's tests run in (the policy's ``tests.requirements``).

The toolkit's own environment is lean and a runner's python3 has none of a model's libraries (nor
pytest), so a repository names what its tests need in a requirements file. The check step makes
that environment once per job and content (the requirements file and the files it includes, the
repository's path and this Python name the folder), in a folder of this user's under $RUNNER_TEMP,
and runs ``tests.command`` with its ``bin`` first on PATH and without the toolkit's own PYTHONPATH.
$LIFECYCLE_TESTS_VENV names a prepared environment instead, used as it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from model_lifecycle import settings
from model_lifecycle.errors import BadInput, ServiceError

READY = ".model-lifecycle-tests-ready"
# pip could not reach its index (it then also says "No matching distribution"): the network's fault
_UNREACHABLE = re.compile(r"Retrying \(Retry\(|NewConnectionError|Max retries exceeded|ProxyError|SSLError|"
                          r"Temporary failure in name resolution|Connection refused|timed out")
# pip's words for a requirement that can never install: the file's fault
_UNINSTALLABLE = re.compile(r"No matching distribution|Could not find a version|ResolutionImpossible|"
                            r"Invalid requirement|Could not open requirements file|conflicting dependencies|"
                            r"Failed to build|metadata-generation-failed|does not appear to be a Python project")
# what the tests' environment must not inherit from the toolkit's process
_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")


def prepared(requirements: str | None, repository: str, timeout: int) -> Path | None:
    """The environment for the tests: $LIFECYCLE_TESTS_VENV, else one made from ``requirements``
    (a path inside ``repository``) within ``timeout`` seconds, else None (the caller's PATH)."""
    given = settings.TESTS_VENV.get()
    if given:
        venv = Path(given).resolve()
        if not (venv / "bin").is_dir():
            raise BadInput(f"${settings.TESTS_VENV.name} {given!r} is not a virtual environment (no bin folder)")
        return venv
    if not requirements:
        return None
    root = Path(repository).resolve()
    path = (root / requirements).resolve()
    if not path.is_relative_to(root):
        raise BadInput(f"tests.requirements {requirements!r} is outside the repository",
                       hint="name a pip requirements file relative to the repository's root")
    if not path.is_file():
        raise BadInput(f"tests.requirements {requirements!r}: no such file in {repository!r}",
                       hint="name a pip requirements file relative to the repository, or remove tests.requirements")
    venv = _private_folder() / f"tests-{_digest(path, root)}"
    deadline = time.monotonic() + timeout
    with open(f"{venv}.lock", "a") as lock:
        _lock(lock, deadline, requirements)  # two check steps of one job never build one environment at once
        if not (venv / READY).exists():
            _build(venv, path, root, requirements, deadline)
    return venv


def _private_folder() -> Path:
    """This user's folder for test environments, 0700: nobody else can plant one in it."""
    folder = Path(settings.RUNNER_TEMP.get() or tempfile.gettempdir()) / f"model-lifecycle-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = folder.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise BadInput(f"{folder} is not a private folder of this user (owner or mode)",
                       hint="remove it, or set RUNNER_TEMP to a folder of your own")
    return folder


def _digest(path: Path, root: Path) -> str:
    """The environment's name: the requirements and the files they include, where, and for which Python."""
    digest = hashlib.sha256(f"{root}\0{sys.executable}\0{sys.version}\0".encode())
    seen: set[Path] = set()
    pending = [path]
    while pending:
        current = pending.pop()
        if current in seen or not current.is_file():
            continue
        seen.add(current)
        text = current.read_bytes()
        digest.update(str(current).encode() + b"\0" + text + b"\0")
        for line in text.decode(errors="replace").splitlines():
            included = _INCLUDE.match(line)
            if included:
                pending.append((current.parent / included.group(1)).resolve())
    return digest.hexdigest()[:16]


def _lock(lock: object, deadline: float, requirements: str) -> None:
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ServiceError(f"another step is still installing tests.requirements {requirements!r}",
                                   hint="raise tests.timeout_seconds, or prepare an environment ($LIFECYCLE_TESTS_VENV)")
            time.sleep(0.5)


def _build(venv: Path, path: Path, root: Path, requirements: str, deadline: float) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted step
    env = _pip_environment()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True,
                       timeout=max(1.0, deadline - time.monotonic()), env=env)
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "-r", str(path)],
                              capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()),
                              cwd=root, env=env)  # local paths in the file resolve from the root, as a developer's would
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(venv, ignore_errors=True)
        raise ServiceError(f"installing tests.requirements {requirements!r} took longer than tests.timeout_seconds",
                           hint="raise tests.timeout_seconds, or prepare an environment ($LIFECYCLE_TESTS_VENV)") from exc
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(venv, ignore_errors=True)
        raise ServiceError(f"could not make a virtual environment for the tests: {_last_line(exc.stderr)}") from exc
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        output = done.stdout + done.stderr
        message = f"tests.requirements {requirements!r}: pip could not install it: {_last_line(output)}"
        if _UNINSTALLABLE.search(output) and not _UNREACHABLE.search(output):
            raise BadInput(message, hint="fix the requirements in that file")
        raise ServiceError(message, hint="the package index may be unreachable: re-run the job")
    (venv / READY).touch()


def _pip_environment() -> dict[str, str]:
    """pip's environment: without the toolkit's Python variables and without any secret (a package's
    build script runs in it)."""
    secrets = {s.name for s in settings.ALL if s.secret}
    return {k: v for k, v in os.environ.items() if k not in secrets and k not in _PYTHON_VARIABLES}


def environment(venv: Path | None, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the environment's bin first on PATH (the command, pytest, python are its own) and
    none of the toolkit's Python variables (its PYTHONPATH would shadow what the tests installed)."""
    if venv is None:
        return dict(base)
    env = {k: v for k, v in base.items() if k not in _PYTHON_VARIABLES}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *[p for p in [base.get("PATH")] if p]])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
