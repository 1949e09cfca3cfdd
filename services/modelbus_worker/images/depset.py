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
from pathlib import Path
from typing import Any

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.docker_build import build_image, image_exists
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.pip_index import index_fingerprint
from modelbus_worker.images.requirements import depset_tag, normalize_requirements
from modelbus_worker.images.wheelhouse import ensure_wheelhouse
from modelbus_worker.pool.settings import ContainerSettings

log = get_logger("modelbus_worker.images.depset")

# Two stages: the wheels live only in the first, the final image copies the venv.
DEPSET_DOCKERFILE = """\
FROM {base} AS install
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
    context = settings.build_root / f"depset-{tag.rsplit(':', 1)[1]}-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    try:
        _link_tree(wheels, context / "wheels")
        digest = tag.rsplit(":", 1)[1]
        dockerfile = DEPSET_DOCKERFILE.format(base=base_tag, digest=digest)
        (context / "Dockerfile").write_text(dockerfile)
        build_image(client, context, tag, labels={"modelbus.image": "depset"})
    finally:
        shutil.rmtree(context, ignore_errors=True)
    log.info("depset image built", tag=tag, requirements=normalized,
             wheels_s=round(fetched - started, 2),
             build_s=round(time.monotonic() - fetched, 2))
    return tag


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy across file systems) the wheelhouse into the build context."""
    dst.mkdir()
    for item in src.iterdir():
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)
