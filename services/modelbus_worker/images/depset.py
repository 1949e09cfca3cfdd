"""Dependency-set images: the base image plus a model's pip requirements, built offline.

Wheels are resolved on the host into a cached wheelhouse (``pip download`` for the
container's Python and platform); the image build then runs with no network and
installs with ``--no-index``. The tag is a hash of the normalized requirements and the
base image id, so models with identical requirements share one image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.docker_build import ImageBuildFailed, build_image, image_exists
from modelbus_worker.images.requirements import (
    depset_tag,
    normalize_requirements,
    pip_platforms,
    requirements_hash,
)
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


def depset_salt(client: Any, settings: ContainerSettings, base_tag: str) -> str:
    """What, besides the requirements, decides the image: Python and the base image id."""
    return f"py{settings.container_python}|{client.images.get(base_tag).id}"


def ensure_depset_image(
    client: Any, settings: ContainerSettings, requirements: list[str], base_tag: str
) -> str:
    """The tag of the dependency-set image for ``requirements``, built if missing."""
    normalized = normalize_requirements(requirements)
    tag = depset_tag(normalized, depset_salt(client, settings, base_tag))
    if image_exists(client, tag):
        return tag
    started = time.monotonic()
    wheels = ensure_wheelhouse(settings, normalized)
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


def ensure_wheelhouse(settings: ContainerSettings, normalized: list[str]) -> Path:
    """A cached directory of wheels for the container (plus ``requirements.txt``)."""
    platforms = pip_platforms(settings.container_glibc, settings.container_arch)
    key = requirements_hash(normalized, f"{settings.container_python}|{','.join(platforms)}")
    target = settings.wheelhouse_root / key[:16]
    if (target / "requirements.txt").exists():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    reqs = partial / "requirements.in"
    reqs.write_text("\n".join(normalized) + "\n")
    py = settings.container_python
    cmd = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
        "--only-binary=:all:", "--python-version", py, "--implementation", "cp",
        "--abi", f"cp{py.replace('.', '')}", "--abi", "abi3", "--abi", "none",
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


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy across file systems) the wheelhouse into the build context."""
    dst.mkdir()
    for item in src.iterdir():
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)
