"""Standby runtimes: started containers of a runtime image, waiting to be handed a model.

Every container starts as a standby (Python and the libraries imported, socket bound, no
model). After a runtime image was used, the pool keeps ``standby_per_image`` standbys of
it (at most ``max_standby`` in all; a new image's standby replaces the oldest of another),
started in the background. A cold start that finds one costs only the model's load.
Standbys are removed after ``idle_timeout_s``, when they die, and when the pool closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbus_contract.errors import ModelFailed
from modelbus_delivery.logs import get_logger
from modelbus_worker.pool.channel import CONNECTION_LOST, Channel
from modelbus_worker.pool.containers import SOCKET_NAME, DockerContainers
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.pool.standby")

POLL_S = 0.02
STATUS_EVERY_S = 0.5
STANDBY_KEY = "standby"


@dataclass
class Runtime:
    """A started runtime container answering on its socket, not yet handed a model."""

    image: str
    container_id: str
    socket_dir: Path
    channel: Channel
    started_s: float  # container start until the first PONG
    ready_at: float = field(default_factory=time.monotonic)  # a standby pool: its clock


def discard(docker: DockerContainers, container_id: str, socket_dir: Path) -> None:
    """Remove a container and its socket directory (blocking)."""
    try:
        docker.remove(container_id)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def _run(docker: DockerContainers, image: str, key: str) -> tuple[str, Path]:
    socket_dir = docker.make_socket_dir()
    try:
        return docker.start(image, key, socket_dir), socket_dir
    except BaseException:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise


async def launch(
    docker: DockerContainers, settings: ContainerSettings, image: str, key: str
) -> Runtime:
    """Start a container of ``image`` and wait until its runtime answers ``PING``.

    Cancellation-safe: a container whose start was under way is removed, never leaked.
    """
    started = time.monotonic()
    running = asyncio.ensure_future(asyncio.to_thread(_run, docker, image, key))
    try:
        container_id, socket_dir = await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            made = await running  # the thread goes on regardless: remove what it made
            await asyncio.to_thread(discard, docker, *made)
        raise
    channel = Channel(socket_dir / SOCKET_NAME)
    try:
        await _wait_ready(docker, settings, container_id, channel)
    except BaseException:
        channel.close()
        await asyncio.to_thread(discard, docker, container_id, socket_dir)
        raise
    return Runtime(image, container_id, socket_dir, channel, round(time.monotonic() - started, 3))


async def _wait_ready(
    docker: DockerContainers, settings: ContainerSettings, container_id: str, channel: Channel
) -> dict[str, Any]:
    deadline = time.monotonic() + settings.start_timeout_s
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
            status = await asyncio.to_thread(docker.status, container_id)
            if status not in ("created", "running"):
                logs = await asyncio.to_thread(docker.logs_tail, container_id)
                raise ModelFailed(f"runtime container {status} while starting: {logs}")
        if now >= deadline:
            logs = await asyncio.to_thread(docker.logs_tail, container_id)
            raise ModelFailed(f"runtime not ready after {settings.start_timeout_s}s: {logs}")
        await asyncio.sleep(POLL_S)


@dataclass
class _Slot:
    image: str
    task: asyncio.Task[Runtime]
    since: float

    @property
    def ready(self) -> bool:
        return self.task.done() and not self.task.cancelled() and self.task.exception() is None

    @property
    def failed(self) -> bool:
        return self.task.done() and not self.ready


class StandbyPool:
    """The standbys of one worker: started in the background, claimed by cold starts.

    ``clock`` (monotonic seconds) times a standby's age and idleness.
    """

    def __init__(
        self,
        settings: ContainerSettings,
        docker: DockerContainers,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.docker = docker
        self._clock = clock
        self._slots: list[_Slot] = []
        self._chores: set[asyncio.Task[None]] = set()
        self._closed = False

    def container_ids(self) -> dict[str, list[str]]:
        """Runtime image → ids of its standbys that are ready."""
        found: dict[str, list[str]] = {}
        for slot in self._slots:
            if slot.ready:
                found.setdefault(slot.image, []).append(slot.task.result().container_id)
        return found

    def any_ready(self) -> bool:
        return any(slot.ready for slot in self._slots)

    def starting(self) -> int:
        """How many standbys are being started."""
        return sum(1 for slot in self._slots if not slot.task.done())

    def claim(self, image: str) -> asyncio.Task[Runtime] | None:
        """Take a standby of ``image``: a ready one, else the one that started first (its
        start is well under way). The caller owns it; :meth:`abandon` it if unused."""
        mine = [s for s in self._slots if s.image == image and not s.failed]
        slot = next((s for s in mine if s.ready), mine[0] if mine else None)
        if slot is None:
            return None
        self._slots.remove(slot)
        return slot.task

    def abandon(self, task: asyncio.Task[Runtime]) -> None:
        """Remove a claimed standby the caller does not use (e.g. it was cancelled)."""
        self._chore(self._remove(task, "abandoned"))

    def replenish(self, image: str) -> None:
        """Start standbys of ``image`` in the background, up to the configured numbers."""
        self._prune()
        per_image, total = self.settings.standby_per_image, self.settings.max_standby
        if self._closed or per_image <= 0 or total <= 0:
            return
        have = sum(1 for s in self._slots if s.image == image)
        for _ in range(per_image - have):
            if len(self._slots) >= total:
                others = [s for s in self._slots if s.image != image]
                if not others:
                    return
                victim = min(others, key=lambda s: s.since)
                self._slots.remove(victim)
                self._chore(self._remove(victim.task, "replaced"))
            task = asyncio.create_task(self._launch(image))
            task.add_done_callback(functools.partial(self._started, image=image))
            self._slots.append(_Slot(image, task, self._clock()))

    async def _launch(self, image: str) -> Runtime:
        runtime = await launch(self.docker, self.settings, image, STANDBY_KEY)
        runtime.ready_at = self._clock()
        return runtime

    def _started(self, task: asyncio.Task[Runtime], *, image: str) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("standby_start_failed", image=image, error=repr(exc)[:500])
        else:
            runtime = task.result()
            log.info("standby_ready", image=image, container=runtime.container_id[:12],
                     start_s=runtime.started_s)

    def _prune(self) -> None:
        self._slots = [s for s in self._slots if not s.failed]

    async def reap(self, running: set[str] | None = None) -> None:
        """Drop standbys unused for ``idle_timeout_s`` since they were ready, and those whose
        container died (``running``: the engine's running container ids, when the caller
        has just listed them)."""
        self._prune()
        now, timeout = self._clock(), self.settings.idle_timeout_s
        for slot in [s for s in self._slots if s.ready]:
            if now - slot.task.result().ready_at >= timeout:
                self._slots.remove(slot)
                await self._remove(slot.task, "idle")
        ready = [s for s in self._slots if s.ready]
        if ready:
            if running is None:
                running = await asyncio.to_thread(self.docker.running_ids)
            for slot in ready:
                if slot.task.result().container_id not in running and slot in self._slots:
                    self._slots.remove(slot)
                    await self._remove(slot.task, "died")

    async def close(self) -> None:
        """Remove every standby, including those still starting."""
        self._closed = True
        slots, self._slots = self._slots, []
        for slot in slots:
            self._chore(self._remove(slot.task, "pool closed"))
        while self._chores:
            chores = list(self._chores)
            await asyncio.gather(*chores, return_exceptions=True)
            self._chores.difference_update(chores)

    def _chore(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _remove(self, task: asyncio.Task[Runtime], reason: str) -> None:
        if not task.done():
            task.cancel()  # launch() removes a container it was starting
            await asyncio.wait({task})
            return
        if task.cancelled() or task.exception() is not None:
            return
        runtime = task.result()
        runtime.channel.close()
        log.info("standby_stopped", image=runtime.image, container=runtime.container_id[:12],
                 reason=reason)
        await asyncio.to_thread(discard, self.docker, runtime.container_id, runtime.socket_dir)
