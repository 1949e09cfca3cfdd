"""The container pool: warm model containers per version, Arrow batches in and out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any

import pyarrow as pa

from modelbus_contract.errors import (
    ERRORS_BY_CODE,
    InferenceTimeout,
    InternalError,
    ModelbusError,
    ModelFailed,
)
from modelbus_delivery.logs import debug_enabled, get_logger
from modelbus_worker.failures import StartFailure, remember_failure
from modelbus_worker.pool.channel import CONNECTION_LOST
from modelbus_worker.pool.containers import DockerContainers
from modelbus_worker.pool.policy import (
    SlotView,
    idle_victims,
    lru_victims,
    model_key,
    remembered_message,
    retry_allowed,
)
from modelbus_worker.pool.starter import Starter, StartProgress, WarmContainer
from modelbus_worker.ports import StartListener
from modelbus_worker.runtime.arrow_io import ipc_to_table, table_to_ipc
from modelbus_worker.runtime.protocol import Kind, ProtocolError, decode_json
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.pool")

_OFFLOAD_BYTES = 1 << 20  # encode/decode bigger payloads off the event loop


class ContainerPool:
    """Keeps model-version containers warm and runs Arrow batches through them.

    A first request (or :meth:`warm`) builds the images if needed and starts the
    container; concurrent first requests share one start, and a slow start never blocks
    requests for models already warm (all Docker calls run in threads). A container that
    dies is replaced and the in-flight request retried once. Idle containers are stopped
    after ``idle_timeout_s``; beyond ``max_containers`` the least recently used goes.
    """

    def __init__(self, settings: ContainerSettings, docker_client: Any, tracking_uri: str) -> None:
        self.settings = settings
        self.docker = DockerContainers(docker_client, settings)
        self.starter = Starter(settings, self.docker, tracking_uri)
        self._warm: dict[str, WarmContainer] = {}
        self._starting: dict[str, asyncio.Task[WarmContainer]] = {}
        self._failed: dict[str, StartFailure] = {}
        self._start_listeners: list[StartListener] = []
        self._reaper: asyncio.Task[None] | None = None
        self._stale_removed = False
        self._closed = False

    async def __aenter__(self) -> ContainerPool:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def add_start_listener(self, listener: StartListener) -> None:
        """Call ``listener`` after every start attempt with its error (None: started) and
        its seconds."""
        self._start_listeners.append(listener)

    def container_counts(self) -> dict[str, int]:
        """Containers by state: ``warm``, ``starting`` and ready ``standby`` runtimes."""
        standby = sum(len(ids) for ids in self.starter.standbys.container_ids().values())
        return {"warm": len(self._warm), "starting": len(self._starting), "standby": standby}

    def engine_reachable(self) -> bool:
        """Whether the Docker engine answers a ping (blocking: call it off the event loop)."""
        try:
            return bool(self.docker.client.ping())
        except Exception:
            return False

    def starting(self, name: str, version: str) -> bool:
        """Whether the version's container is being started (images built, files fetched,
        model loaded): its requests wait for that, bounded by ``start_timeout_s``."""
        return model_key(name, version) in self._starting

    def ready(self, name: str, version: str) -> bool:
        """Whether the version has a warm container (a request needs no start)."""
        return model_key(name, version) in self._warm

    def progress(self, name: str, version: str) -> StartProgress | None:
        """The step of the version's start or preparation under way (None: none is)."""
        return self.starter.progress.get(model_key(name, version))

    async def prepare(self, name: str, version: str) -> None:
        """Get a version ready before its first request: a warm container while the pool
        has room for one without evicting another, else its files, its images and a
        standby runtime of its image. Raises what a start raises (``ModelUnavailable``, …)."""
        key = model_key(name, version)
        if key in self._warm:
            return
        if key in self._starting or len(self._warm) + len(self._starting) < (
            self.settings.max_containers
        ):
            await self._acquire(name, version)
            return
        failure = self.start_failure(name, version)
        if failure is not None:
            error = ERRORS_BY_CODE.get(failure.code, InternalError)
            raise error(remembered_message(failure, key, time.monotonic()))
        image = await self.starter.prepare_image(key, name, version)
        self.starter.standbys.replenish(image)

    def running(self) -> dict[str, str]:
        """``name/version`` → container id of every warm container."""
        return {key: c.container_id for key, c in self._warm.items()}

    async def warm(self, name: str, version: str) -> str:
        """Start (or find) the container of a model version; returns its container id."""
        return (await self._acquire(name, version)).container_id

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        """Run ``table`` through the model version's ``predict`` in its container.

        ``timeout_s`` (default ``request_timeout_s``) bounds the inference itself; a cold
        start is bounded separately by ``start_timeout_s``. Raises ModelFailed,
        InferenceTimeout, ModelNotFound or InternalError.
        """
        key = model_key(name, version)
        ceiling = self.settings.request_timeout_s
        timeout = min(timeout_s or ceiling, ceiling)
        t0 = time.perf_counter()
        payload = await _offload(table_to_ipc, table, table.nbytes)
        for attempt in range(1, 3):
            c = await self._acquire(name, version)
            t1 = time.perf_counter()
            c.in_flight += 1
            try:
                async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for
                    kind, body = await c.channel.call(Kind.PREDICT, payload)
            except TimeoutError:
                # The container is shared: remove it only if it no longer answers at all.
                if not await self._healthy(c):
                    await self._drop(c, "timeout and failed health check")
                raise InferenceTimeout(f"{key}: no answer within {timeout}s") from None
            except (*CONNECTION_LOST, ProtocolError) as exc:
                await self._drop(c, f"connection lost: {exc!r}")
                if retry_allowed(attempt):
                    _bound(name, version).warning("container_lost_retrying", attempt=attempt)
                    continue
                raise ModelFailed(f"{key}: container died twice serving the request") from exc
            finally:
                c.in_flight -= 1
                c.last_used = time.monotonic()
            t2 = time.perf_counter()
            if kind == Kind.ERROR:
                info = decode_json(body)
                _bound(name, version).info("model_raised", stage=info.get("stage"),
                                           error=info.get("type"))
                raise ModelFailed(f"{info.get('type')}: {info.get('message')}")
            if kind != Kind.RESULT:
                raise InternalError(f"{key}: runtime answered {kind.name} to PREDICT")
            result = await _offload(ipc_to_table, body, len(body))
            if debug_enabled():
                _bound(name, version).debug(
                    "predicted", rows=table.num_rows, attempt=attempt,
                    acquire_ms=round((t1 - t0) * 1e3, 3), call_ms=round((t2 - t1) * 1e3, 3),
                    total_ms=round((time.perf_counter() - t0) * 1e3, 3),
                )
            return result
        raise InternalError("unreachable")  # pragma: no cover

    async def _healthy(self, warm: WarmContainer) -> bool:
        try:
            await asyncio.wait_for(warm.channel.ping(), self.settings.health_timeout_s)
        except (TimeoutError, *CONNECTION_LOST, ProtocolError, ValueError):
            return False
        return True

    def start_failure(self, name: str, version: str) -> StartFailure | None:
        """The remembered failure of a version that may not be started again yet."""
        failure = self._failed.get(model_key(name, version))
        return failure if failure and time.monotonic() < failure.retry_at else None

    async def _acquire(self, name: str, version: str) -> WarmContainer:
        if self._closed:
            raise InternalError("the container pool is closed")
        key = model_key(name, version)
        warm = self._warm.get(key)
        if warm is not None:
            return warm
        failure = self.start_failure(name, version)
        if failure is not None:  # answered with the code the failure had
            error = ERRORS_BY_CODE.get(failure.code, InternalError)
            raise error(remembered_message(failure, key, time.monotonic()))
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_loop())
        task = self._starting.get(key)
        if task is None:
            task = asyncio.create_task(self._start(key, name, version))
            self._starting[key] = task
            task.add_done_callback(lambda t: self._forget_start(key, t))
        # Shielded: a cancelled request must not cancel a start others wait for.
        return await asyncio.shield(task)

    def _forget_start(self, key: str, task: asyncio.Task[WarmContainer]) -> None:
        if self._starting.get(key) is task:
            del self._starting[key]
        if not task.cancelled():
            task.exception()  # a failed start is raised to its waiters; mark it retrieved

    async def _start(self, key: str, name: str, version: str) -> WarmContainer:
        if not self._stale_removed:
            self._stale_removed = True
            await asyncio.to_thread(self.docker.remove_stale)
        capacity = self.settings.max_containers - len(self._starting)
        for victim in lru_victims(self._views(), capacity):
            await self._evict(victim, "lru")
        started = time.monotonic()
        try:
            warm = await self.starter.start(key, name, version)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, ModelbusError) else InternalError(
                f"{type(exc).__name__}: {exc}"
            )
            self._failed[key] = failure = remember_failure(
                self._failed.get(key), error.message[:2000], time.monotonic(), code=error.code
            )
            log.warning("container_start_failed", model=name, model_version=version,
                        code=error.code, failures=failure.failures, error=error.message[:500],
                        retry_in_s=round(failure.retry_at - time.monotonic(), 1))
            self._tell_listeners(name, version, error, started)
            raise
        self._failed.pop(key, None)
        self._tell_listeners(name, version, None, started)
        if self._closed:
            await asyncio.to_thread(self.starter.discard, warm.container_id, warm.socket_dir)
            raise InternalError("the container pool closed while the model was starting")
        self._warm[key] = warm
        return warm

    def _tell_listeners(
        self, name: str, version: str, error: ModelbusError | None, since: float
    ) -> None:
        seconds = time.monotonic() - since
        for listener in self._start_listeners:
            try:
                listener(name, version, error, seconds)
            except Exception:
                log.exception("start_listener_failed", model=name, model_version=version)

    def _views(self) -> list[SlotView]:
        return [SlotView(k, c.last_used, c.in_flight) for k, c in self._warm.items()]

    async def _evict(self, key: str, reason: str) -> None:
        warm = self._warm.get(key)
        if warm is not None:
            await self._drop(warm, reason)

    async def _drop(self, warm: WarmContainer, reason: str) -> None:
        """Forget a container and remove it (idempotent; other holders just fail over)."""
        if self._warm.get(warm.key) is warm:
            del self._warm[warm.key]
        warm.channel.close()
        log.info("container_stopped", model=warm.name, model_version=warm.version,
                 container=warm.container_id[:12], reason=reason)
        await asyncio.to_thread(self.starter.discard, warm.container_id, warm.socket_dir)

    async def reap(self) -> None:
        """One pass of housekeeping: idle timeout, LRU cap, containers that died, standbys."""
        for key in idle_victims(self._views(), time.monotonic(), self.settings.idle_timeout_s):
            await self._evict(key, "idle")
        capacity = self.settings.max_containers - len(self._starting)
        for key in lru_victims(self._views(), capacity):
            await self._evict(key, "lru")
        running: set[str] | None = None  # one listing of the engine for both checks
        if self._warm or self.starter.standbys.any_ready():
            running = await asyncio.to_thread(self.docker.running_ids)
            for warm in list(self._warm.values()):
                if warm.container_id not in running and warm.in_flight == 0:
                    await self._drop(warm, "died")
        await self.starter.standbys.reap(running)

    async def _reap_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.settings.reap_interval_s)
            try:
                await self.reap()
            except Exception:
                log.exception("container_housekeeping_failed")

    async def close(self) -> None:
        """Stop and remove every container this pool started."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        starting = list(self._starting.values())
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        for warm in list(self._warm.values()):
            await self._drop(warm, "pool closed")
        await self.starter.standbys.close()
        self.starter.close()


async def _offload(func: Any, arg: Any, size: int) -> Any:
    if size >= _OFFLOAD_BYTES:
        return await asyncio.to_thread(func, arg)
    return func(arg)


def _bound(name: str, version: str) -> Any:
    """The log with the model version bound (built only to log: not per request)."""
    return log.bind(model=name, model_version=version)
