"""Dependency-set images: the base image plus a model's pip requirements, built offline.

With uv (``MODELBUS_WORKER_CONTAINER_INSTALLER=uv``, the default) the requirements are
installed on the host for the container's Python and platform (see ``uv_install``); the
image build, with no network, unpacks that venv and compiles its bytecode. With pip, or
when uv cannot install a set, wheels are resolved on the host into a cached wheelhouse
(see ``wheelhouse``) and the build installs them with ``pip install --no-index``; pip's
output then says why a set cannot be installed. The tag is a hash of the normalized
requirements and the base image id, so models with identical requirements share one image
(whichever installer built it).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.base import RUNTIME_UID
from modelbus_worker.images.dependency_failures import DEPENDENCY_FAILURES, DependencyFailures
from modelbus_worker.images.docker_build import build_image, image_exists, remove_build_stages
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import index_fingerprint
from modelbus_worker.images.requirements import depset_tag, normalize_requirements
from modelbus_worker.images.usage import WHEELHOUSE, UsageRecords
from modelbus_worker.images.uv_install import (
    VENV,
    UvFailed,
    find_uv,
    pack_venv,
    site_packages,
    stage_venv,
)
from modelbus_worker.images.wheelhouse import ensure_wheelhouse, wheelhouse_key
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.depset")

# Two stages: the wheels live only in the first, the final image copies the venv. The
# first stage is labelled with its build, whose leftover image is removed after the build.
DEPSET_DOCKERFILE = """\
FROM {base} AS install
LABEL modelbus.stage="install" modelbus.build="{build}"
USER root
COPY wheels /wheels
RUN /opt/venv/bin/python -m pip install --no-index --find-links /wheels \\
      --disable-pip-version-check --no-cache-dir -r /wheels/requirements.txt
FROM {base}
COPY --from=install /opt/venv /opt/venv
LABEL modelbus.depset="{digest}"
"""

# One stage: the venv installed by uv on the host is unpacked over the base's, then its
# bytecode is compiled by the container's Python (a read-only root could not cache it
# later); a file that does not compile is skipped, as pip skips it.
UNPACKED_DEPSET_DOCKERFILE = """\
FROM {base}
USER root
ADD venv.tar {venv}/
RUN {venv}/bin/python -c "import sys, sysconfig; p = sysconfig.get_path('purelib'); \\
sys.exit(None if p == '{packages}' else 'the base venv keeps its packages in ' + p)" \\
 && ({venv}/bin/python -m compileall -q -j 0 {packages} > /dev/null || true)
USER {uid}
LABEL modelbus.depset="{digest}"
"""

Installer = Literal["uv", "pip"]


@dataclass(frozen=True)
class DepsetBuild:
    """How a dependency-set image was built: by which installer, and the seconds of
    resolving/installing on the host and of the image build."""

    installer: Installer
    resolve_s: float
    build_s: float


def depset_salt(client: Any, interpreter: Interpreter, base_tag: str) -> str:
    """What, besides the requirements, decides the image: Python and the base image id."""
    return f"py{interpreter.python}|{client.images.get(base_tag).id}"


def ensure_depset_image(
    client: Any, settings: ContainerSettings, requirements: list[str], base_tag: str,
    interpreter: Interpreter,
) -> str:
    """The tag of the dependency-set image for ``requirements``, built if missing."""
    normalized = normalize_requirements(requirements)
    salt = depset_salt(client, interpreter, base_tag)
    fingerprint = index_fingerprint(settings.pip)  # wheels may differ between indexes
    if fingerprint:
        salt = f"{salt}|index={fingerprint}"
    tag = depset_tag(normalized, salt)
    if image_exists(client, tag):
        return tag
    built = build_depset(client, settings, normalized, interpreter, base_tag, tag)
    log.info("depset_image_built", tag=tag, requirements=normalized, installer=built.installer,
             wheels_s=built.resolve_s, build_s=built.build_s)
    return tag


def build_depset(
    client: Any, settings: ContainerSettings, normalized: list[str], interpreter: Interpreter,
    base_tag: str, tag: str, failures: DependencyFailures = DEPENDENCY_FAILURES,
) -> DepsetBuild:
    """Build ``tag`` for normalized requirements with the configured installer; a set uv
    cannot install goes to pip, which builds it or raises why it cannot be installed."""
    uv = find_uv() if settings.container_installer == "uv" else None
    if settings.container_installer == "uv" and uv is None:
        log.warning("uv_not_found", using="pip")
    if uv is not None:
        try:
            return build_with_uv(client, settings, uv, normalized, interpreter, base_tag, tag,
                                 failures)
        except UvFailed as exc:
            log.warning("uv_install_failed", requirements=normalized, output=exc.output,
                        using="pip")
    started = time.monotonic()
    wheels = ensure_wheelhouse(settings, normalized, interpreter, failures)
    fetched = time.monotonic()
    build_depset_image(client, settings, wheels, base_tag, tag)
    return DepsetBuild("pip", round(fetched - started, 2), round(time.monotonic() - fetched, 2))


def build_with_uv(
    client: Any, settings: ContainerSettings, uv: str, normalized: list[str],
    interpreter: Interpreter, base_tag: str, tag: str,
    failures: DependencyFailures = DEPENDENCY_FAILURES,
) -> DepsetBuild:
    """Install the set with uv on the host, then build ``tag`` from that venv, offline.
    Raises UvFailed when uv cannot install it (nothing is remembered: pip is asked)."""
    key = wheelhouse_key(settings, normalized, interpreter)
    failures.check(key)
    digest = tag.rsplit(":", 1)[1]
    build = uuid.uuid4().hex[:12]
    stage = settings.build_root / f"depset-{digest}-{build}-venv"
    context = settings.build_root / f"depset-{digest}-{build}"
    started = time.monotonic()
    try:
        venv = stage_venv(uv, settings, normalized, interpreter, stage)
        failures.forget(key)
        installed = time.monotonic()
        context.mkdir(parents=True)
        pack_venv(venv, context / "venv.tar")
        shutil.rmtree(stage)
        dockerfile = UNPACKED_DEPSET_DOCKERFILE.format(
            base=base_tag, venv=VENV, packages=f"{VENV}/{site_packages(interpreter.python)}",
            uid=RUNTIME_UID, digest=digest)
        (context / "Dockerfile").write_text(dockerfile)
        build_image(client, context, tag, labels={"modelbus.image": "depset"})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(context, ignore_errors=True)
    UsageRecords(settings.cache_dir).touch_image(tag)
    return DepsetBuild("uv", round(installed - started, 2), round(time.monotonic() - installed, 2))


def build_depset_image(
    client: Any, settings: ContainerSettings, wheels: Path, base_tag: str, tag: str
) -> None:
    """Build ``tag`` from ``base_tag`` and a wheelhouse, offline; no stage image is left."""
    usage = UsageRecords(settings.cache_dir)
    usage.touch_entry(WHEELHOUSE, wheels.name)
    build = uuid.uuid4().hex[:12]
    context = settings.build_root / f"depset-{tag.rsplit(':', 1)[1]}-{build}"
    context.mkdir(parents=True)
    try:
        _link_tree(wheels, context / "wheels")
        digest = tag.rsplit(":", 1)[1]
        dockerfile = DEPSET_DOCKERFILE.format(base=base_tag, digest=digest, build=build)
        (context / "Dockerfile").write_text(dockerfile)
        build_image(client, context, tag, labels={"modelbus.image": "depset"})
    finally:
        shutil.rmtree(context, ignore_errors=True)
        remove_build_stages(client, build)
    usage.touch_image(tag)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy across file systems) the wheelhouse into the build context."""
    dst.mkdir()
    for item in src.iterdir():
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)
