"""Dependency-set images: the base image plus a model's pip requirements, built offline.

Wheels are resolved on the host into a cached wheelhouse (see ``wheelhouse``); the image
build then runs with no network and installs with ``--no-index``. The tag is a hash of
the normalized requirements and the base image id, so models with identical requirements
share one image.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.docker_build import build_image, image_exists, remove_build_stages
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import index_fingerprint
from modelbus_worker.images.requirements import depset_tag, normalize_requirements
from modelbus_worker.images.usage import WHEELHOUSE, UsageRecords
from modelbus_worker.images.wheelhouse import ensure_wheelhouse
from modelbus_worker.pool.settings import ContainerSettings

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
    started = time.monotonic()
    wheels = ensure_wheelhouse(settings, normalized, interpreter)
    fetched = time.monotonic()
    build_depset_image(client, settings, wheels, base_tag, tag)
    log.info("depset image built", tag=tag, requirements=normalized,
             wheels_s=round(fetched - started, 2),
             build_s=round(time.monotonic() - fetched, 2))
    return tag


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
