"""Tiny throw-away images for the disk tests: built on the base image, each with a blob of
a known size, labelled with the test's id so that exactly these are cleaned up."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors

from modelbus_worker.images.docker_build import build_image

MIB = 1024 * 1024
TEST_LABEL = "modelbus.test"


def build_blob_image(
    client: Any, workdir: Path, parent: str, tag: str, blob_bytes: int, test_id: str
) -> str:
    """``tag``: ``parent`` plus one file of ``blob_bytes`` random bytes; runs ``sleep``."""
    context = workdir / tag.replace("/", "+").replace(":", "-")
    context.mkdir(parents=True)
    (context / "blob").write_bytes(os.urandom(blob_bytes))
    (context / "Dockerfile").write_text(
        f'FROM {parent}\nCOPY blob /blob\nCMD ["sleep", "infinity"]\n'
    )
    build_image(client, context, tag, labels={TEST_LABEL: test_id})
    return str(client.images.get(tag).id)


def remove_test_images(client: Any, test_id: str) -> None:
    """Remove the containers labelled with ``test_id`` and the images labelled with it or
    tagged ``…:test-<test_id>…``, images built on others first."""
    mine = {"label": f"{TEST_LABEL}={test_id}"}
    for container in client.containers.list(all=True, filters=mine, ignore_removed=True):
        container.remove(force=True)
    images = {image.id: image for image in client.images.list(filters=mine)}
    for image in client.images.list(name="modelbus/*"):
        if any(f":test-{test_id}" in tag for tag in image.tags):
            images[image.id] = image
    depth = {image.id: len(image.history()) for image in images.values()}
    for image in sorted(images.values(), key=lambda i: -depth[i.id]):
        for tag in image.tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)


def write_wheel(folder: Path, name: str = "tinypkg", value: int = 42) -> Path:
    """A minimal pure-Python wheel (``import tinypkg; tinypkg.VALUE``)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def stage_images(client: Any) -> Iterator[str]:
    """Ids of the untagged install-stage images of the engine."""
    for image in client.images.list(filters={"label": "modelbus.stage=install"}):
        if not image.tags:
            yield str(image.id)
