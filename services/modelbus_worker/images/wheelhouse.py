"""The wheelhouse of a dependency set: every wheel its requirements need, resolved on the
host by ``pip download`` for the container's interpreter and platform, cached on disk, so
the image build itself runs offline (``--no-index``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from modelbus_worker.images.docker_build import ImageBuildFailed
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.requirements import pip_platforms, requirements_hash
from modelbus_worker.pool.settings import ContainerSettings


def ensure_wheelhouse(
    settings: ContainerSettings, normalized: list[str], interpreter: Interpreter
) -> Path:
    """A cached directory of wheels for the interpreter (plus ``requirements.txt``)."""
    platforms = pip_platforms(interpreter.glibc, interpreter.arch)
    key = requirements_hash(normalized, f"{interpreter.python}|{','.join(platforms)}")
    target = settings.wheelhouse_root / key[:16]
    if (target / "requirements.txt").exists():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    reqs = partial / "requirements.in"
    reqs.write_text("\n".join(normalized) + "\n")
    cmd = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
        "--only-binary=:all:", "--python-version", interpreter.python, "--implementation",
        "cp", "--abi", interpreter.abi, "--abi", "abi3", "--abi", "none",
        *[arg for p in platforms for arg in ("--platform", p)],
        "-d", str(partial), "-r", str(reqs),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=settings.pip_timeout_s,
                          check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        shutil.rmtree(partial, ignore_errors=True)
        raise ImageBuildFailed(f"pip download failed for {normalized}:\n{tail}")
    reqs.rename(partial / "requirements.txt")
    try:
        partial.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target
