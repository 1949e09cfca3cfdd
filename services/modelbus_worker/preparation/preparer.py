"""The preparer: gets the versions a worker owns ready in the background, under caps.

Woken by every catalog change and every rebalance, it works out what the policy wants
(``plan.wanted_versions``) and prepares each wanted version once, at most
``concurrency`` at a time, reporting ``preparing`` and then ``prepared`` or ``failed``.
A version a request has already made warm is reported ``prepared`` only: a ``preparing``
report would make the gateway refuse its requests (503) until the next report came.
A version that failed is not tried again by the preparer (its requests still may, under
the pool's own backoff), so a model that cannot be built is reported once, not in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping

from modelbus_contract.errors import InternalError, ModelbusError
from modelbus_contract.messages import FAILED, PREPARED, PREPARING, CatalogEntry, version_key
from modelbus_delivery.logs import get_logger

from ..ports import Preparation
from .plan import Ownership, wanted_versions
from .reports import ServingReporter, serving_report

log = get_logger("worker.preparer")


# The request partitions this worker holds now (None: not known yet).
OwnershipSource = Callable[[], Ownership | None]
# Told how each preparation ended (``prepared``/``failed``) and its seconds.
PreparedObserver = Callable[[str, float], None]


class Preparer:
    """Prepares the wanted versions in the background; ``wake()`` when anything changed."""

    def __init__(
        self,
        entries: Mapping[str, CatalogEntry],
        ownership: OwnershipSource,
        pool: Preparation,
        reporter: ServingReporter,
        *,
        policy: str,
        concurrency: int,
        max_versions: int,
        observe: PreparedObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._ownership = ownership
        self._pool = pool
        self._reporter = reporter
        self._policy = policy
        self._max_versions = max_versions
        self._observe = observe
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._wanted: set[str] = set()
        self.outcomes: dict[str, str] = {}  # name/version → preparing, prepared or failed
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Work out again what to prepare (the catalog or the assignment changed)."""
        self._wake.set()

    async def start(self, changes: AsyncIterator[object] | None = None) -> None:
        """Plan now and whenever woken; ``changes`` (the catalog's) wake it as they come."""
        self._tasks.append(asyncio.create_task(self._run(), name="preparer"))
        if changes is not None:
            self._tasks.append(asyncio.create_task(self._follow(changes), name="preparer-feed"))
        self.wake()

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def idle(self) -> None:
        """Wait until no preparation is running (for tests and orderly stops)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _follow(self, changes: AsyncIterator[object]) -> None:
        async for _ in changes:
            self.wake()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._plan()
            except Exception:  # a planning bug must not end background preparation
                log.exception("preparation_plan_failed")

    def _plan(self) -> None:
        ownership = self._ownership()
        if ownership is None:
            return
        wanted = wanted_versions(
            self._entries.values(), self._policy, ownership, self._max_versions
        )
        self._wanted = {entry.key for entry in wanted}
        for entry in wanted:
            key = entry.key
            if key in self.outcomes or key in self._running:
                continue
            task = asyncio.create_task(self._prepare(entry.name, entry.version))
            self._running[key] = task
            task.add_done_callback(functools.partial(self._ended, key))

    def _ended(self, key: str, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _prepare(self, name: str, version: str) -> None:
        key = version_key(name, version)
        async with self._slots:
            if key not in self._wanted:  # partitions moved, or a newer version came first
                return
            self.outcomes[key] = PREPARING
            worker = self._reporter.worker
            bound = log.bind(model=name, model_version=version)
            bound.info("preparation_started")
            if not self._pool.ready(name, version):
                await self._reporter.send(serving_report(name, version, PREPARING, worker))
            started = self._clock()
            error: ModelbusError | None = None
            try:
                await self._pool.prepare(name, version)
            except ModelbusError as exc:
                error = exc
            except Exception as exc:  # any other failure is reported, not raised
                error = InternalError(f"{type(exc).__name__}: {exc}")
            seconds = self._clock() - started
            state = PREPARED if error is None else FAILED
            self.outcomes[key] = state
            if self._observe is not None:
                self._observe(state, seconds)
            if error is None:
                bound.info("preparation_done", seconds=round(seconds, 3))
            else:
                bound.warning("preparation_failed", error_code=error.code,
                              error=error.message[:300], seconds=round(seconds, 3))
            await self._reporter.send(
                serving_report(name, version, state, worker, error=error, seconds=seconds)
            )
