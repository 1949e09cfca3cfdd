"""Base images: a Python interpreter + a venv at /opt/venv + user 10001, one per interpreter.

With no container registry, the image is built from Debian packages: ``debootstrap``
a minimal root file system of the interpreter's suite (bookworm for 3.11, trixie for 3.13;
cached under the cache dir), ``docker import`` it, then an offline Dockerfile step adds the
venv and the user. An interpreter that comes from an image (``MODELBUS_WORKER_BASE_IMAGE``,
or the template) is built on that image instead, when it exists locally or can be pulled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import docker.errors

from modelbus_contract.interpreters import DEBIAN_SUITES
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.docker_build import ImageBuildFailed, build_image, image_exists
from modelbus_worker.images.interpreter import Interpreter, default_interpreter
from modelbus_worker.images.requirements import sanitize_tag_part
from modelbus_worker.images.sources import DEFAULT_DEBIAN_MIRROR, read_debian_mirror
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.base")

BASE_PACKAGES = ("python3", "python3-venv", "libgomp1", "libstdc++6", "ca-certificates")
RUNTIME_UID = 10001
# Paths pruned from the root file system: documentation and apt's downloaded state.
PRUNED = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists",
          "var/cache/apt/archives", "var/cache/debconf/templates.dat-old")

BASE_DOCKERFILE = f"""\
FROM {{rootfs}}
RUN python3 -m venv /opt/venv \\
 && groupadd --gid {RUNTIME_UID} modelbus \\
 && useradd --uid {RUNTIME_UID} --gid {RUNTIME_UID} --no-create-home \\
      --home-dir /nonexistent --shell /usr/sbin/nologin modelbus
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
USER {RUNTIME_UID}
"""


def recipe_hash(suite: str) -> str:
    """A short hash of everything that shapes the root file system of ``suite``."""
    text = "\n".join([suite, *BASE_PACKAGES, *PRUNED])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_tag(interpreter: Interpreter) -> str:
    """The tag of the base image of an interpreter."""
    if interpreter.image:
        return f"modelbus/base:from-{sanitize_tag_part(interpreter.image, 100)}"
    return f"modelbus/base:{interpreter.suite}-py{interpreter.python.replace('.', '')}"


def _pull(client: Any, ref: str) -> bool:
    try:
        client.images.pull(ref)
    except docker.errors.DockerException:
        return False
    return True


def image_available(client: Any, ref: str) -> bool:
    """Whether ``ref`` is present locally or can be pulled."""
    return image_exists(client, ref) or _pull(client, ref)


def ensure_base_image(
    client: Any, settings: ContainerSettings, interpreter: Interpreter | None = None
) -> str:
    """Return the tag of the base image of ``interpreter`` (default: the default one),
    building it if needed: on the interpreter's image, or offline from its Debian suite.

    Either way the image gets the venv at /opt/venv and the user 10001 on top.
    """
    interpreter = interpreter or default_interpreter(settings)
    tag = base_tag(interpreter)
    if image_exists(client, tag):
        return tag
    if interpreter.image:
        if image_available(client, interpreter.image):
            _build_on(client, settings, interpreter.image, tag, interpreter.image)
            return tag
        if interpreter.image != settings.base_image:
            raise ImageBuildFailed(
                f"base image {interpreter.image} is neither present nor pullable")
        log.warning("base_image_unavailable_building_offline",
                    image=settings.base_image)
    suite = interpreter.suite or settings.debian_suite
    python = DEBIAN_SUITES.get(suite, (interpreter.python, ""))[0]
    tag = f"modelbus/base:{suite}-py{python.replace('.', '')}"
    if image_exists(client, tag):
        return tag
    started = time.monotonic()
    rootfs_tag = f"modelbus/rootfs:{suite}-{recipe_hash(suite)}"
    if not image_exists(client, rootfs_tag):
        tarball = rootfs_tarball(settings, suite)
        log.info("root_file_system_importing", tarball=str(tarball), tag=rootfs_tag)
        repo, _, version = rootfs_tag.partition(":")
        client.api.import_image(src=str(tarball), repository=repo, tag=version)
    _build_on(client, settings, rootfs_tag, tag, recipe_hash(suite))
    log.info("base_image_built", tag=tag, seconds=round(time.monotonic() - started, 1))
    return tag


def _build_on(
    client: Any, settings: ContainerSettings, parent: str, tag: str, recipe: str
) -> None:
    context = settings.build_root / f"base-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    try:
        (context / "Dockerfile").write_text(BASE_DOCKERFILE.format(rootfs=parent))
        build_image(client, context, tag, labels={"modelbus.base": recipe})
    finally:
        shutil.rmtree(context, ignore_errors=True)


def rootfs_tarball(settings: ContainerSettings, suite: str) -> Path:
    """The cached tarball of the minimal root file system of ``suite``, made by debootstrap
    if missing."""
    root = settings.cache_dir / "base" / recipe_hash(suite)
    tarball = root / "rootfs.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise ImageBuildFailed("debootstrap is not installed (apt-get install debootstrap)")
    # A suite apt does not list here comes from the mirror of the suite it does list.
    mirror = (settings.debian_mirror or read_debian_mirror(suite)
              or read_debian_mirror(settings.debian_suite) or DEFAULT_DEBIAN_MIRROR)
    target = root / "rootfs"
    debs = settings.cache_dir / "base" / f"debs-{suite}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    debs.mkdir(parents=True, exist_ok=True)
    log.info("debootstrap", suite=suite, mirror=mirror, target=str(target))
    _run([
        "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        f"--cache-dir={debs.resolve()}", suite, str(target), mirror,
    ])
    for rel in PRUNED:
        path = target / rel
        if path.is_dir():
            shutil.rmtree(path)
            path.mkdir()
        elif path.exists():
            path.unlink()
    partial = root / "rootfs.tar.partial"
    _run(["tar", "--numeric-owner", "-C", str(target), "-cf", str(partial), "."])
    partial.rename(tarball)
    shutil.rmtree(target, ignore_errors=True)
    return tarball


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise ImageBuildFailed(f"{cmd[0]} failed (exit {proc.returncode}):\n{tail}")
