"""Cold start of one model version: image (built or reused), container, readiness."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbus_contract.errors import ModelFailed
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.model_image import ensure_model_image
from modelbus_worker.pool.channel import CONNECTION_LOST, Channel
from modelbus_worker.pool.containers import SOCKET_NAME, DockerContainers
from modelbus_worker.pool.settings import ContainerSettings

log = get_logger("modelbus_worker.pool.starter")

POLL_S = 0.02
STATUS_EVERY_S = 0.5


@dataclass
class WarmContainer:
    """A running container of one model version and its socket."""

    key: str
    name: str
    version: str
    container_id: str
    socket_dir: Path
    channel: Channel
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0


class Starter:
    """Builds images (one build at a time) and starts containers until they answer PING."""

    def __init__(
        self, settings: ContainerSettings, docker: DockerContainers, tracking_uri: str
    ) -> None:
        self.settings = settings
        self.docker = docker
        self.tracking_uri = tracking_uri
        # Builds share base and depset images; one at a time avoids building one twice.
        self._build_lock = threading.Lock()
        # Image work (lookups, and builds waiting on the lock) gets threads of its own, so
        # many cold starts never take the default executor's few threads from warm requests.
        self._image_executor = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="modelbus-images"
        )

    def close(self) -> None:
        self._image_executor.shutdown(wait=False, cancel_futures=True)

    def _image(self, name: str, version: str) -> tuple[str, dict[str, float]]:
        image = ensure_model_image(
            self.docker.client, self.settings, name, version, self.tracking_uri,
            build_lock=self._build_lock,
        )
        return image.tag, image.timings

    async def start(self, key: str, name: str, version: str) -> WarmContainer:
        """A ready container of ``name``/``version``; raises ModelFailed if it cannot load."""
        bound = log.bind(model=name, model_version=version)
        t0 = time.monotonic()
        tag, image_timings = await asyncio.get_running_loop().run_in_executor(
            self._image_executor, self._image, name, version
        )
        t1 = time.monotonic()
        socket_dir = await asyncio.to_thread(self.docker.make_socket_dir)
        container_id = await asyncio.to_thread(self.docker.start, tag, key, socket_dir)
        t2 = time.monotonic()
        channel = Channel(socket_dir / SOCKET_NAME)
        try:
            info = await self._wait_ready(container_id, channel)
        except BaseException:
            channel.close()
            await asyncio.to_thread(self.discard, container_id, socket_dir)
            raise
        t3 = time.monotonic()
        bound.info(
            "container started", image=tag, container=container_id[:12],
            image_s=round(t1 - t0, 3), container_s=round(t2 - t1, 3),
            ready_s=round(t3 - t2, 3), model_load_s=info.get("load_s"),
            total_s=round(t3 - t0, 3), **image_timings,
        )
        return WarmContainer(key, name, version, container_id, socket_dir, channel)

    async def _wait_ready(self, container_id: str, channel: Channel) -> dict[str, Any]:
        deadline = time.monotonic() + self.settings.start_timeout_s
        next_status = time.monotonic() + STATUS_EVERY_S
        while True:
            if channel.path.exists():
                try:
                    return await asyncio.wait_for(channel.ping(), timeout=5.0)
                except (*CONNECTION_LOST, TimeoutError):
                    pass
            now = time.monotonic()
            if now >= next_status:
                next_status = now + STATUS_EVERY_S
                status = await asyncio.to_thread(self.docker.status, container_id)
                if status not in ("created", "running"):
                    logs = await asyncio.to_thread(self.docker.logs_tail, container_id)
                    raise ModelFailed(f"model container {status} while loading: {logs}")
            if now >= deadline:
                logs = await asyncio.to_thread(self.docker.logs_tail, container_id)
                raise ModelFailed(
                    f"model not ready after {self.settings.start_timeout_s}s: {logs}"
                )
            await asyncio.sleep(POLL_S)

    def discard(self, container_id: str, socket_dir: Path) -> None:
        """Remove a container and its socket directory (blocking)."""
        try:
            self.docker.remove(container_id)
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)
