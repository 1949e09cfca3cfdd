"""Cold start of one model version: files and runtime image, a runtime container, LOAD.

The container is a standby of the version's runtime image when one is ready (or being
started); otherwise a new one is started. Either way the model's files are linked into
its socket directory and loaded with a ``LOAD`` frame, after which a new standby of that
image is started in the background for the next version that needs one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbus_contract.errors import InternalError, ModelFailed, ModelUnavailable
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.requirements import RequirementsError
from modelbus_worker.images.runtime_image import KnownImages, PreparedModel, prepare_model
from modelbus_worker.pool.channel import CONNECTION_LOST, Channel
from modelbus_worker.pool.containers import DockerContainers
from modelbus_worker.pool.standby import Runtime, StandbyPool, discard, launch
from modelbus_worker.runtime.protocol import Kind, ProtocolError, decode_json, encode_json
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.pool.starter")


@dataclass(frozen=True)
class StartProgress:
    """Where a start stands: its ``step`` (``files``, ``images``, ``container``,
    ``loading``) and when it began (``time.monotonic``)."""

    step: str
    since: float


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
    """Prepares files and images (one build at a time) and hands models to runtimes."""

    def __init__(
        self, settings: ContainerSettings, docker: DockerContainers, tracking_uri: str
    ) -> None:
        self.settings = settings
        self.docker = docker
        self.tracking_uri = tracking_uri
        self.standbys = StandbyPool(settings, docker)
        # Builds share base and depset images; one at a time avoids building one twice.
        self._build_lock = threading.Lock()
        self._known_images: KnownImages = {}
        # Image work (lookups, and builds waiting on the lock) gets threads of its own, so
        # many cold starts never take the default executor's few threads from warm requests.
        self._image_executor = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="modelbus-images"
        )
        # name/version → its start's step (written from image threads too: one assignment).
        self.progress: dict[str, StartProgress] = {}

    def close(self) -> None:
        self._image_executor.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, key: str, name: str, version: str, since: float) -> PreparedModel:
        def step(name: str) -> None:
            self.progress[key] = StartProgress(name, since)

        try:
            return prepare_model(
                self.docker.client, self.settings, name, version, self.tracking_uri,
                build_lock=self._build_lock, known=self._known_images, on_step=step,
            )
        except RequirementsError as exc:  # a requirement line pip cannot install either
            raise ModelUnavailable(str(exc)) from exc

    async def prepare_image(self, key: str, name: str, version: str) -> str:
        """Fetch a version's files and build its images, without a container; its runtime
        image. Raises ModelUnavailable when it cannot be installed or run here."""
        try:
            prepared = await self._prepared(key, name, version, time.monotonic())
        finally:
            self.progress.pop(key, None)
        return prepared.image

    async def _prepared(self, key: str, name: str, version: str, since: float) -> PreparedModel:
        self.progress[key] = StartProgress("files", since)
        return await asyncio.get_running_loop().run_in_executor(
            self._image_executor, self._prepare, key, name, version, since
        )

    async def start(self, key: str, name: str, version: str) -> WarmContainer:
        """A container serving ``name``/``version``; raises ModelFailed if it cannot load."""
        try:
            return await self._start(key, name, version)
        finally:
            self.progress.pop(key, None)

    async def _start(self, key: str, name: str, version: str) -> WarmContainer:
        bound = log.bind(model=name, model_version=version)
        t0 = time.monotonic()
        prepared = await self._prepared(key, name, version, t0)
        t1 = time.monotonic()
        self.progress[key] = StartProgress("container", t0)
        runtime, standby = await self._runtime(prepared.image, key)
        t2 = time.monotonic()
        try:
            path = await asyncio.to_thread(
                self.docker.place_model, runtime.socket_dir, prepared.model_dir
            )
            t3 = time.monotonic()
            self.progress[key] = StartProgress("loading", t0)
            loaded = await self._load(runtime, path)
        except BaseException:
            runtime.channel.close()
            await asyncio.to_thread(self.discard, runtime.container_id, runtime.socket_dir)
            raise
        t4 = time.monotonic()
        self.standbys.replenish(prepared.image)
        bound.info(
            "container_started", image=prepared.image, container=runtime.container_id[:12],
            standby=standby, **prepared.timings, prepare_s=round(t1 - t0, 3),
            container_s=round(t2 - t1, 3), link_s=round(t3 - t2, 3),
            load_s=round(t4 - t3, 3), model_load_s=loaded.get("load_s"),
            total_s=round(t4 - t0, 3),
        )
        return WarmContainer(
            key, name, version, runtime.container_id, runtime.socket_dir, runtime.channel
        )

    async def _runtime(self, image: str, key: str) -> tuple[Runtime, bool]:
        """A standby of ``image`` if there is one that answers, else a new container."""
        claimed = self.standbys.claim(image)
        if claimed is not None:
            try:
                runtime = await asyncio.shield(claimed)
            except asyncio.CancelledError:
                self.standbys.abandon(claimed)
                raise
            except Exception as exc:
                log.warning("standby_unusable_starting_container", error=repr(exc)[:300])
            else:
                if await self._answers(runtime):
                    return runtime, True
                runtime.channel.close()
                await asyncio.to_thread(self.discard, runtime.container_id, runtime.socket_dir)
        return await launch(self.docker, self.settings, image, key), False

    async def _answers(self, runtime: Runtime) -> bool:
        try:
            info = await asyncio.wait_for(runtime.channel.ping(), self.settings.health_timeout_s)
        except (*CONNECTION_LOST, ProtocolError, TimeoutError, ValueError):
            return False
        return info.get("state") == "standby"

    async def _load(self, runtime: Runtime, path: str) -> dict[str, Any]:
        timeout = self.settings.start_timeout_s
        try:
            kind, body = await asyncio.wait_for(
                runtime.channel.call(Kind.LOAD, encode_json({"model": path})), timeout
            )
        except TimeoutError:
            logs = await asyncio.to_thread(self.docker.logs_tail, runtime.container_id)
            raise ModelFailed(f"model not loaded after {timeout}s: {logs}") from None
        except (*CONNECTION_LOST, ProtocolError) as exc:
            status = await asyncio.to_thread(self.docker.status, runtime.container_id)
            logs = await asyncio.to_thread(self.docker.logs_tail, runtime.container_id)
            raise ModelFailed(f"model container {status} while loading: {logs}") from exc
        info = decode_json(body)
        if kind == Kind.ERROR:
            raise ModelFailed(f"model failed to load: {info.get('type')}: {info.get('message')}")
        if kind != Kind.LOADED:
            raise InternalError(f"runtime answered {kind.name} to LOAD")
        return info

    def discard(self, container_id: str, socket_dir: Path) -> None:
        """Remove a container and its socket directory (blocking)."""
        discard(self.docker, container_id, socket_dir)
