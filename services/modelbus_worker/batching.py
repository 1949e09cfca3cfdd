"""Micro-batching: requests for one model version that arrive together share one predict.

Requests are queued per model version (and input schema). A batch closes as soon as the
requests that arrived together are in — those of one Kafka poll, which the runtime hands
over in one turn of the event loop — or after a configurable window; while a version already
has ``max_in_flight`` batches running, new requests wait and go as the next batch when one
finishes. So a lone request is never held back, and under load batches grow by themselves
(Triton's dynamic batcher, MLServer's adaptive batching). A batch never exceeds
``max_rows`` unless a single request is larger. Its tables are concatenated, run in one
``predict``, and the output is split back by each request's row count, so every answer
carries exactly its own rows, in order.

Interactive requests go first: a request from the interactive lane (``CURRENT_LANE``, set
by the delivery runtime) is queued ahead of every bulk-lane request of its version, so it
waits for the batches running, never for a bulk backlog queued before it, and goes in a
batch of interactive requests only (no larger than they are). While a version had an
interactive request within ``interactive_hold_s``, its bulk batches run one at a time: a
container answers one connection's frames in order, so an interactive batch sent next waits
for one bulk batch at most, not for every one in flight.

A request that came alone in its poll (``ALONE_IN_POLL``, set by the delivery runtime) while
its version has nothing queued or running goes to the model at once, in the caller's own task:
there is no company to gather, and the turns of the event loop a batch takes to close would
only let the consumer's fetching run first. Requests arriving meanwhile queue behind it as
behind any running batch.

A batch that fails is retried request by request, so one bad request never fails the
others. A model whose output has a different number of rows than its input is not
row-wise: that batch is retried one by one and the version is never batched again.

Windows and deadlines are timers of the running event loop, or of the ``Timers`` a test
passes in (a clock it moves itself). Each request's span (when traced) is told the batch
that answered it through the ``BatchSpans`` port the worker service passes in.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from modelbus_contract.errors import InferenceTimeout, InternalError, ModelbusError
from modelbus_delivery.lane_policy import CURRENT_LANE
from modelbus_delivery.logs import get_logger
from modelbus_delivery.poll_context import ALONE_IN_POLL

from .ports import NO_SPANS, BatchSpans, Predictor

log = get_logger("batching")


class Cancellable(Protocol):
    """A scheduled callback that can be called off (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """Where windows and deadlines are scheduled: the running loop's ``call_later``."""

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> Cancellable: ...


@dataclass(frozen=True)
class BatchSettings:
    """How long a batch waits for company, how large it may grow, how many run at once."""

    window_s: float = 0.0
    max_rows: int = 4096
    max_in_flight: int = 2  # per version: the container computes one while the next travels
    interactive_hold_s: float = 0.25  # bulk batches one at a time this long after interactive


@dataclass
class _Pending:
    table: pa.Table
    timeout_s: float | None
    answer: asyncio.Future[pa.Table] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    span: Any = None  # the request's predict span, if traced


@dataclass
class _Queue:
    pending: list[_Pending] = field(default_factory=list)
    urgent: int = 0  # the first ``urgent`` of ``pending`` are interactive
    rows: int = 0
    closing: Cancellable | None = None  # the scheduled close of the open batch
    running: int = 0


_Key = tuple[str, str, int]  # model, version, input schema (its id, see _SchemaIds)

# Distinct input schemas remembered per version (tables a version's inputs do not name
# columns of may come in any schema; the rest are cast to the model's).
_SCHEMAS_PER_VERSION = 16


class _SchemaIds:
    """A number per distinct input schema of a version: tables whose schemas are equal
    (``pa.Schema.equals``, as a dictionary key compares them) get the same. Comparing is
    fast where hashing a schema is not (it formats every type)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], list[tuple[pa.Schema, int]]] = {}
        self._next = itertools.count()

    def of(self, name: str, version: str, schema: pa.Schema) -> int:
        known = self._known.setdefault((name, version), [])
        for seen, number in known:
            if seen.equals(schema):
                return number
        if len(known) >= _SCHEMAS_PER_VERSION:
            known.pop(0)  # its queue, if any, drains; new requests get a new number
        number = next(self._next)
        known.append((schema, number))
        return number


def _expire(answer: asyncio.Future[pa.Table], message: str) -> None:
    if not answer.done():
        answer.set_exception(InferenceTimeout(message))


class BatchingPredictor:
    """A ``Predictor`` that batches concurrent requests before calling the real one."""

    def __init__(
        self,
        predictor: Predictor,
        settings: BatchSettings | None = None,
        batchable: Callable[[str, str], bool] = lambda name, version: True,
        starting: Callable[[str, str], bool] = lambda name, version: False,
        timers: Callable[[], Timers] = asyncio.get_running_loop,
        spans: BatchSpans = NO_SPANS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._predictor = predictor
        self.settings = settings or BatchSettings()
        self._batchable = batchable
        # Whether a version's container is being started: as without batching, a request's
        # deadline does not run while its model starts (the start has its own bound).
        self._starting = starting
        self._timers = timers
        self._spans = spans
        self._clock = clock
        self._queues: dict[_Key, _Queue] = {}
        self._last_interactive: dict[tuple[str, str], float] = {}
        self._schema_ids = _SchemaIds()
        self._runs: set[asyncio.Task[None]] = set()
        self._not_row_wise: set[tuple[str, str]] = set()
        self.batches = 0  # predict calls made for more than one request

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        if (
            table.num_rows == 0
            or (name, version) in self._not_row_wise
            or not self._batchable(name, version)
        ):
            return await self._predictor.predict(name, version, table, timeout_s)
        key = (name, version, self._schema_ids.of(name, version, table.schema))
        queue = self._queues.get(key)
        bulk = CURRENT_LANE.get() == "bulk"
        if not bulk:
            self._last_interactive[(name, version)] = self._clock()
        if queue is None:
            queue = self._queues[key] = _Queue()
            if ALONE_IN_POLL.get() and self.settings.window_s <= 0:
                return await self._alone(key, queue, table, timeout_s)
        item = _Pending(table, timeout_s, span=self._spans.current())
        if bulk:
            queue.pending.append(item)
        else:
            queue.pending.insert(queue.urgent, item)
            queue.urgent += 1
        queue.rows += table.num_rows
        self._schedule(key, queue)
        if timeout_s is None:
            return await item.answer
        # A batch runs under its members' longest deadline: this one keeps its own. It does
        # not run while the model starts: checked at each expiry, a start that was under way
        # at the last check gives the request its whole deadline again from this one (the
        # first predict after a start may still be on its way).
        timers = self._timers()
        deadline = timeout_s + self.settings.window_s
        expiry: list[Cancellable] = []
        was_starting = False

        def expire() -> None:
            nonlocal was_starting
            starting = self._starting(name, version)
            if starting or was_starting:
                was_starting = starting
                expiry[0] = timers.call_later(deadline, expire)
            else:
                _expire(item.answer, f"{name}/{version}: no answer within {timeout_s}s")

        expiry.append(timers.call_later(deadline, expire))
        try:
            return await item.answer
        finally:
            expiry[0].cancel()

    def _schedule(self, key: _Key, queue: _Queue) -> None:
        """Close the open batch now, at the end of this turn, after the window, or later."""
        if not queue.pending or queue.running >= self._in_flight_limit(key, queue):
            return  # a running batch's end schedules the next one
        if queue.rows >= self.settings.max_rows:
            if queue.closing is not None:
                queue.closing.cancel()
            self._close_batch(key, queue)
            return
        if queue.closing is None:
            window = self.settings.window_s
            queue.closing = (
                self._timers().call_later(window, self._close_batch, key, queue)
                if window > 0
                else asyncio.get_running_loop().call_soon(self._close_batch, key, queue)
            )

    def _in_flight_limit(self, key: _Key, queue: _Queue) -> int:
        """How many batches of ``queue`` may run: one for bulk requests while the version's
        interactive callers are about, else ``max_in_flight``."""
        most = self.settings.max_in_flight
        if queue.urgent or most <= 1:
            return most
        last = self._last_interactive.get((key[0], key[1]))
        if last is None:
            return most
        if self._clock() - last < self.settings.interactive_hold_s:
            return 1
        del self._last_interactive[(key[0], key[1])]
        return most

    def _close_batch(self, key: _Key, queue: _Queue) -> None:
        queue.closing = None
        count, rows = 0, 0
        # Interactive requests go without bulk ones: their batch is no larger than they are.
        candidates = queue.pending[:queue.urgent] if queue.urgent else queue.pending
        for item in candidates:  # at least one request, then as many as fit
            if count and rows + item.table.num_rows > self.settings.max_rows:
                break
            count, rows = count + 1, rows + item.table.num_rows
        batch = queue.pending[:count]
        del queue.pending[:count]
        queue.urgent -= min(count, queue.urgent)
        queue.rows -= rows
        queue.running += 1
        task = asyncio.create_task(self._run(key[0], key[1], batch))
        self._runs.add(task)
        task.add_done_callback(lambda t: self._batch_done(key, queue, t))
        self._schedule(key, queue)

    async def _alone(
        self, key: _Key, queue: _Queue, table: pa.Table, timeout_s: float | None
    ) -> pa.Table:
        """Predict a lone request in the caller's task, counted as a running batch."""
        queue.running += 1
        try:
            return await self._predictor.predict(key[0], key[1], table, timeout_s)
        finally:
            self._ran(key, queue)

    def _batch_done(self, key: _Key, queue: _Queue, task: asyncio.Task[None]) -> None:
        self._runs.discard(task)
        self._ran(key, queue)

    def _ran(self, key: _Key, queue: _Queue) -> None:
        queue.running -= 1
        if queue.pending:
            self._schedule(key, queue)
        elif queue.running == 0 and self._queues.get(key) is queue:
            del self._queues[key]

    def row_wise(self, name: str, version: str) -> bool:
        """False once the version answered a batch with another number of rows."""
        return (name, version) not in self._not_row_wise

    async def close(self) -> None:
        for queue in list(self._queues.values()):
            if queue.closing is not None:
                queue.closing.cancel()
            for item in queue.pending:
                if not item.answer.done():
                    item.answer.set_exception(InternalError("the worker is stopping"))
            queue.pending.clear()
            queue.urgent = 0
        runs = list(self._runs)
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        self._queues.clear()
        await self._predictor.close()

    async def _run(self, name: str, version: str, batch: list[_Pending]) -> None:
        try:
            await self._run_batch(name, version, batch)
        finally:  # cancelled (the worker stopping) or crashed: nobody is left waiting
            for item in batch:
                if not item.answer.done():
                    item.answer.set_exception(InternalError("the worker is stopping"))

    async def _run_batch(self, name: str, version: str, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            await self._one(name, version, batch[0])
            return
        timeouts = [p.timeout_s for p in batch if p.timeout_s is not None]
        try:
            output = await self._predictor.predict(
                name, version, pa.concat_tables([p.table for p in batch]),
                max(timeouts) if timeouts else None,
            )
        except ModelbusError as exc:
            log.info("batch_failed_retrying_one_by_one", model=name, model_version=version,
                     requests=len(batch), error_code=exc.code)
            await asyncio.gather(*(self._one(name, version, p) for p in batch))
            return
        except Exception as exc:  # answered request by request below, never lost
            log.warning("batch_crashed_retrying_one_by_one", model=name, model_version=version,
                        error=repr(exc)[:300])
            await asyncio.gather(*(self._one(name, version, p) for p in batch))
            return
        rows = sum(p.table.num_rows for p in batch)
        if output.num_rows != rows:
            self._not_row_wise.add((name, version))
            log.warning("model_not_row_wise", model=name, model_version=version,
                        input_rows=rows, output_rows=output.num_rows)
            await asyncio.gather(*(self._one(name, version, p) for p in batch))
            return
        self.batches += 1
        start = 0
        for p in batch:
            self._spans.note_batch(p.span, len(batch), rows)
            if not p.answer.done():
                p.answer.set_result(output.slice(start, p.table.num_rows))
            start += p.table.num_rows

    async def _one(self, name: str, version: str, item: _Pending) -> None:
        try:
            result = await self._predictor.predict(name, version, item.table, item.timeout_s)
        except Exception as exc:
            if not item.answer.done():
                item.answer.set_exception(exc)
            return
        if not item.answer.done():
            item.answer.set_result(result)
