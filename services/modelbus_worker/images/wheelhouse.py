"""The wheelhouse of a dependency set: every wheel its requirements need, resolved on the
host by ``pip download`` for the container's interpreter and platform, cached on disk, so
the image build itself runs offline (``--no-index``).

The package indexes come from ``PipIndexSettings`` (``MODELBUS_PIP_*``), handed to pip in
its environment; their hash is part of the cache key. A resolution that fails because of
the requirements raises ModelUnavailable with the decisive line first, and is remembered
per dependency set (see ``dependency_failures``); an index that cannot be reached is
modelbus's problem (ImageBuildFailed, ``internal``) and is not remembered here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from modelbus_contract.errors import ModelUnavailable
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.dependency_failures import DEPENDENCY_FAILURES, DependencyFailures
from modelbus_worker.images.docker_build import ImageBuildFailed
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_failure import explain
from modelbus_worker.images.pip_index import index_fingerprint, pip_environment
from modelbus_worker.images.requirements import pip_platforms, requirements_hash
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.wheelhouse")


def wheelhouse_key(
    settings: ContainerSettings, normalized: list[str], interpreter: Interpreter
) -> str:
    """The dependency set's id: requirements, interpreter, platforms and index settings."""
    platforms = pip_platforms(interpreter.glibc, interpreter.arch)
    salt = f"{interpreter.python}|{','.join(platforms)}"
    fingerprint = index_fingerprint(settings.pip)
    if fingerprint:  # absent by default, so existing wheelhouses keep their keys
        salt = f"{salt}|index={fingerprint}"
    return requirements_hash(normalized, salt)


def pip_download_command(interpreter: Interpreter, target: Path, requirements: Path) -> list[str]:
    """``pip download`` of binary wheels for the container's interpreter (never sdists:
    building one would run its code on the host). ``-vv`` makes pip say why it skipped
    each file, which ``pip_failure`` turns into the decisive line."""
    platforms = pip_platforms(interpreter.glibc, interpreter.arch)
    return [
        sys.executable, "-m", "pip", "download", "-vv", "--no-input",
        "--disable-pip-version-check", "--only-binary=:all:",
        "--python-version", interpreter.python, "--implementation", "cp",
        "--abi", interpreter.abi, "--abi", "abi3", "--abi", "none",
        *[arg for p in platforms for arg in ("--platform", p)],
        "-d", str(target), "-r", str(requirements),
    ]


def raise_if_remembered(
    settings: ContainerSettings, normalized: list[str], interpreter: Interpreter,
    failures: DependencyFailures = DEPENDENCY_FAILURES,
) -> None:
    """Raise the remembered ModelUnavailable of a set that may not be resolved again yet."""
    failures.check(wheelhouse_key(settings, normalized, interpreter))


def ensure_wheelhouse(
    settings: ContainerSettings, normalized: list[str], interpreter: Interpreter,
    failures: DependencyFailures = DEPENDENCY_FAILURES,
) -> Path:
    """A cached directory of wheels for the interpreter (plus ``requirements.txt``)."""
    key = wheelhouse_key(settings, normalized, interpreter)
    target = settings.wheelhouse_root / key[:16]
    if (target / "requirements.txt").exists():
        return target
    failures.check(key)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    reqs = partial / "requirements.in"
    reqs.write_text("\n".join(normalized) + "\n")
    env = {**os.environ, **pip_environment(settings.pip)}
    try:
        proc = subprocess.run(
            pip_download_command(interpreter, partial, reqs), capture_output=True, text=True,
            timeout=settings.pip_timeout_s, check=False, env=env,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(partial, ignore_errors=True)
        raise ImageBuildFailed(
            f"pip download took longer than {settings.pip_timeout_s}s for {normalized}"
        ) from None
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        _failed(settings, failures, key, normalized, interpreter,
                (proc.stdout + proc.stderr).replace(f"{partial}/", ""))
    failures.forget(key)
    reqs.rename(partial / "requirements.txt")
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _failed(
    settings: ContainerSettings, failures: DependencyFailures, key: str,
    normalized: list[str], interpreter: Interpreter, output: str,
) -> None:
    platform = pip_platforms(interpreter.glibc, interpreter.arch)[0]
    failure = explain(output, interpreter.python, platform)
    if not failure.model_fault:
        raise ImageBuildFailed(f"pip download failed for {normalized}: {failure.message}")
    remembered = failures.record(
        key, failure.message, settings.dependency_retry_initial_s,
        settings.dependency_retry_max_s,
    )
    log.warning("dependency_set_unresolvable", kind=failure.kind, reason=failure.decisive,
                failures=remembered.failures, requirements=normalized)
    raise ModelUnavailable(failure.message)
