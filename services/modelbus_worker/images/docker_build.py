"""Small blocking helpers around the Docker SDK shared by every image builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import docker.errors

from modelbus_contract.errors import InternalError
from modelbus_delivery.logs import get_logger

log = get_logger("modelbus_worker.images.docker_build")

# The label naming the build of a multi-stage build's intermediate stage, so that exactly
# that build's leftover is removed once it is done.
BUILD_LABEL = "modelbus.build"


class ImageBuildFailed(InternalError):
    """An image could not be built; the message carries the tail of the build log."""


def image_exists(client: Any, tag: str) -> bool:
    """Whether ``tag`` is present in the local engine."""
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_log_tail(log: Any, lines: int = 25) -> str:
    """The last lines of a Docker build log (a stream of dicts) as text."""
    out: list[str] = []
    for chunk in log or []:
        if isinstance(chunk, dict):
            text = chunk.get("stream") or chunk.get("error") or ""
            out.extend(line for line in str(text).splitlines() if line.strip())
    return "\n".join(out[-lines:])


def build_image(
    client: Any,
    context: Path,
    tag: str,
    labels: dict[str, str] | None = None,
    network: bool = False,
) -> None:
    """Build ``context/Dockerfile`` as ``tag``; with ``network=False`` the build is offline."""
    try:
        client.images.build(
            path=str(context),
            tag=tag,
            labels=labels or {},
            network_mode=None if network else "none",
            rm=True,
            forcerm=True,
            pull=False,
        )
    except docker.errors.BuildError as exc:
        raise ImageBuildFailed(
            f"building {tag} failed: {exc.msg}\n{build_log_tail(exc.build_log)}"
        ) from exc
    except docker.errors.APIError as exc:
        raise ImageBuildFailed(f"building {tag} failed: {exc}") from exc


def remove_build_stages(client: Any, build_id: str) -> int:
    """Remove the untagged stage images a build labelled ``modelbus.build=<build_id>``
    (and the intermediates below them); returns how many. Failures are logged: a leftover
    is for ``modelbus images prune``, not a reason to fail the build."""
    removed = 0
    try:
        for image in client.images.list(filters={"label": f"{BUILD_LABEL}={build_id}"}):
            if not image.tags:
                client.images.remove(image.id)
                removed += 1
    except docker.errors.DockerException as exc:
        log.warning("build_stage_not_removed", build=build_id, error=str(exc))
    return removed


def docker_client(client: Any | None = None) -> Any:
    """The given client, or one from the environment with a readable error if none is up."""
    if client is not None:
        return client
    try:
        made = docker.from_env()
        made.ping()
    except docker.errors.DockerException as exc:
        raise InternalError(f"the Docker engine is not reachable: {exc}") from exc
    return made
