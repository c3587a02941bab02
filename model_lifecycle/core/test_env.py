"""The virtual environment the repository's tests run in (the policy's ``tests.requirements``).

The toolkit's own environment is lean and a runner's python3 has none of a model's libraries (nor
pytest), so a repository names what its tests need in a requirements file. The check step makes
that environment once per job and file content (the file's sha256 names the folder, under
$RUNNER_TEMP), and runs ``tests.command`` with its ``bin`` first on PATH. $LIFECYCLE_TESTS_VENV
names a prepared environment instead (a self-hosted runner's), used as it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from model_lifecycle import settings
from model_lifecycle.errors import BadInput, ServiceError

READY = ".model-lifecycle-tests-ready"
# pip's words for a requirement that can never install: the file's fault, not the network's
_UNINSTALLABLE = re.compile(r"No matching distribution|Could not find a version|ResolutionImpossible|"
                            r"Invalid requirement|Could not open requirements file|conflicting dependencies")


def prepared(requirements: str | None, repository: str, timeout: int) -> Path | None:
    """The environment for the tests: $LIFECYCLE_TESTS_VENV, else one made from ``requirements``
    (a path relative to ``repository``), else None (the tests run with the caller's PATH)."""
    given = settings.TESTS_VENV.get()
    if given:
        venv = Path(given)
        if not (venv / "bin").is_dir():
            raise BadInput(f"${settings.TESTS_VENV.name} {given!r} is not a virtual environment (no bin folder)")
        return venv
    if not requirements:
        return None
    path = Path(repository) / requirements
    if not path.is_file():
        raise BadInput(f"tests.requirements {requirements!r}: no such file in {repository!r}",
                       hint="name a pip requirements file relative to the repository, or remove tests.requirements")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    venv = Path(settings.RUNNER_TEMP.get() or tempfile.gettempdir()) / f"model-lifecycle-tests-{digest}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two check steps of one job never build the same environment at once
        if not (venv / READY).exists():
            _build(venv, path, requirements, timeout)
    return venv


def _build(venv: Path, path: Path, requirements: str, timeout: int) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted step
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True,
                       timeout=timeout)
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "-r", str(path.resolve())],
                              capture_output=True, text=True, timeout=timeout, cwd=path.parent)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(venv, ignore_errors=True)
        raise ServiceError(f"installing tests.requirements {requirements!r} took over {timeout} s",
                           hint="raise tests.timeout_seconds, or prepare an environment ($LIFECYCLE_TESTS_VENV)") from exc
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(venv, ignore_errors=True)
        raise ServiceError(f"could not make a virtual environment for the tests: {_last_line(exc.stderr)}") from exc
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        output = done.stdout + done.stderr
        message = f"tests.requirements {requirements!r}: pip could not install it: {_last_line(output)}"
        if _UNINSTALLABLE.search(output):
            raise BadInput(message, hint="fix the requirement pins in that file")
        raise ServiceError(message, hint="the package index may be unreachable: re-run the job")
    (venv / READY).touch()


def environment(venv: Path | None, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the environment's bin first on PATH (the command, pytest, python are its own)."""
    if venv is None:
        return dict(base)
    env = {k: v for k, v in base.items() if k != "PYTHONHOME"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *[p for p in [base.get("PATH")] if p]])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
