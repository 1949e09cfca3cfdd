"""A dependency set installed by uv on the worker's host, for the container's Python and
platform, into a staged copy of the image's venv, packed as the tarball the image build
unpacks offline.

uv has no ``download`` command, but installs for another Python and platform into a target
directory (``--target --python-version --python-platform``), from a cache of unpacked
wheels that lives in the worker's cache directory (``uv/``) and is shared by every
dependency set. Binary wheels only, as with pip: building a source distribution would run
its code on the host. The indexes come from ``PipIndexSettings`` through uv's environment;
with several, the best version across all of them wins, as with pip
(``--index-strategy unsafe-best-match``). A failed install raises ``UvFailed``: the caller
then asks pip, whose verbose output says why (``pip_failure``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from modelbus_contract.redact import redact
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.docker_build import ImageBuildFailed
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import uv_environment
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.uv_install")

VENV = "/opt/venv"
VENV_PYTHON = f"{VENV}/bin/python"
# The newest manylinux tag uv accepts as a --python-platform; a newer glibc runs its wheels.
UV_NEWEST_GLIBC = (2, 40)
TAIL_LINES = 8
_TRAMPOLINE_EXEC = re.compile(rb"^'''exec' .* \"\$0\" \"\$@\"\s*$")


class UvFailed(Exception):
    """uv could not install the set; ``output`` is the tail of what it printed (redacted)."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


def find_uv() -> str | None:
    """The uv binary of the ``uv`` package installed beside modelbus, else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def site_packages(python: str) -> str:
    """Where a venv of Python ``python`` (X.Y) keeps its packages, relative to the venv."""
    return f"lib/python{python}/site-packages"


def uv_platform(glibc: str, arch: str) -> str:
    """uv's ``--python-platform`` for a container with this glibc, e.g.
    ``x86_64-manylinux_2_36``."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    major, minor = min((major, minor), UV_NEWEST_GLIBC)
    return f"{arch}-manylinux_{major}_{minor}"


def uv_install_command(
    uv: str, interpreter: Interpreter, target: Path, requirements: Path
) -> list[str]:
    """``uv pip install --target`` of binary wheels for the container's interpreter."""
    return [
        uv, "pip", "install", "--no-python-downloads", "--python", sys.executable,
        "--target", str(target),
        "--python-version", interpreter.python,
        "--python-platform", uv_platform(interpreter.glibc, interpreter.arch),
        "--only-binary", ":all:", "--index-strategy", "unsafe-best-match",
        "-r", str(requirements),
    ]


def container_script(data: bytes, python: str = VENV_PYTHON) -> bytes:
    """A script uv wrote for the host, made to run ``python`` in the container: its
    ``#!`` line (or the ``/bin/sh`` trampoline uv writes for a long interpreter path) names
    the host's interpreter. Anything else (a shell script, a binary) is returned as is."""
    lines = data.split(b"\n")
    first = lines[0]
    if not first.startswith(b"#!"):
        return data
    if first.strip() == b"#!/bin/sh" and len(lines) > 2 and _TRAMPOLINE_EXEC.match(lines[1]) \
            and lines[2].strip() == b"' '''":
        return b"\n".join([b"#!" + python.encode(), *lines[3:]])
    if b"python" in first.rsplit(b"/", 1)[-1]:
        return b"\n".join([b"#!" + python.encode(), *lines[1:]])
    return data


def stage_venv(
    uv: str, settings: ContainerSettings, normalized: list[str], interpreter: Interpreter,
    stage: Path,
) -> Path:
    """Install ``normalized`` into ``stage/venv`` (packages and scripts laid out as in the
    image's venv); returns that directory. Raises UvFailed when uv cannot install the set,
    ImageBuildFailed when it takes longer than ``pip_timeout_s``."""
    venv = stage / "venv"
    packages = venv / site_packages(interpreter.python)
    packages.mkdir(parents=True)
    requirements = stage / "requirements.txt"
    requirements.write_text("\n".join(normalized) + "\n")
    env = {**os.environ, **uv_environment(settings.pip),
           "UV_CACHE_DIR": str(settings.cache_dir / "uv")}
    try:
        # In the stage: uv would read a uv.toml or pyproject.toml of the working directory.
        proc = subprocess.run(
            uv_install_command(uv, interpreter, packages, requirements), capture_output=True,
            text=True, timeout=settings.pip_timeout_s, check=False, env=env, cwd=stage,
        )
    except subprocess.TimeoutExpired:
        raise ImageBuildFailed(
            f"uv took longer than {settings.pip_timeout_s}s for {normalized}"
        ) from None
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).replace(f"{stage}/", "").strip().splitlines()
        raise UvFailed(redact("\n".join(lines[-TAIL_LINES:])))
    _move_scripts(packages / "bin", venv / "bin")
    return venv


def _move_scripts(source: Path, target: Path) -> None:
    """uv's ``--target`` puts scripts beside the packages: into the venv's bin, for its
    Python. Each is written anew: a file from uv's cache is a hard link, never changed."""
    if not source.is_dir():
        return
    target.mkdir()
    for script in source.iterdir():
        if script.is_file():
            made = target / script.name
            made.write_bytes(container_script(script.read_bytes()))
            made.chmod(script.stat().st_mode & 0o777)
    shutil.rmtree(source)


def pack_venv(venv: Path, tarball: Path) -> None:
    """``venv`` as a tarball owned by root, readable by all (what ``ADD`` unpacks)."""
    proc = subprocess.run(
        ["tar", "--owner=0", "--group=0", "--numeric-owner", "--mode=u+rwX,go+rX,go-w",
         "-C", str(venv), "-cf", str(tarball), "."],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise ImageBuildFailed(f"tar of the staged venv failed: {proc.stderr.strip()[-500:]}")
