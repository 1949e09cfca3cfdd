"""Micro-batching: requests for one model version that arrive together share one predict.

Requests are queued per model version (and input schema); a batch closes when its window
(a few milliseconds from its first request) passes or when it holds ``max_rows`` rows. Its
tables are concatenated, run in one ``predict``, and the output is split back by each
request's row count, so every answer carries exactly its own rows, in order.

A batch that fails is retried request by request, so one bad request never fails the
others. A model whose output has a different number of rows than its input is not
row-wise: that batch is retried one by one and the version is never batched again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from modelbus_contract.errors import InferenceTimeout, InternalError, ModelbusError
from modelbus_delivery.logs import get_logger

from .handler import Predictor

log = get_logger("batching")


@dataclass(frozen=True)
class BatchSettings:
    """How long a batch waits for company, and how large it may grow."""

    window_s: float = 0.002
    max_rows: int = 4096


@dataclass
class _Pending:
    table: pa.Table
    timeout_s: float | None
    answer: asyncio.Future[pa.Table] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _Queue:
    pending: list[_Pending] = field(default_factory=list)
    rows: int = 0
    flusher: asyncio.Task[None] | None = None
    full: asyncio.Event = field(default_factory=asyncio.Event)


class BatchingPredictor:
    """A ``Predictor`` that batches concurrent requests before calling the real one."""

    def __init__(
        self,
        predictor: Predictor,
        settings: BatchSettings | None = None,
        batchable: Callable[[str, str], bool] = lambda name, version: True,
    ) -> None:
        self._predictor = predictor
        self.settings = settings or BatchSettings()
        self._batchable = batchable
        self._queues: dict[tuple[str, str, pa.Schema], _Queue] = {}
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
        key = (name, version, table.schema)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        item = _Pending(table, timeout_s)
        queue.pending.append(item)
        queue.rows += table.num_rows
        if queue.flusher is None:
            queue.flusher = asyncio.create_task(self._flush_after_window(key, queue))
        if queue.rows >= self.settings.max_rows:
            queue.full.set()
        if timeout_s is None:
            return await asyncio.shield(item.answer)
        try:  # a batch runs under its members' longest deadline: keep this one's own
            return await asyncio.wait_for(
                asyncio.shield(item.answer), timeout_s + self.settings.window_s
            )
        except TimeoutError:
            raise InferenceTimeout(f"{name}/{version}: no answer within {timeout_s}s") from None

    def row_wise(self, name: str, version: str) -> bool:
        """False once the version answered a batch with another number of rows."""
        return (name, version) not in self._not_row_wise

    async def close(self) -> None:
        for queue in list(self._queues.values()):
            if queue.flusher is not None:
                queue.flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.flusher
            for item in queue.pending:
                if not item.answer.done():
                    item.answer.set_exception(InternalError("the worker is stopping"))
        self._queues.clear()
        await self._predictor.close()

    async def _flush_after_window(self, key: tuple[str, str, pa.Schema], queue: _Queue) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.full.wait(), self.settings.window_s)
        if self._queues.get(key) is queue:
            del self._queues[key]  # later requests start the next batch
        await self._run(key[0], key[1], queue.pending)

    async def _run(self, name: str, version: str, batch: list[_Pending]) -> None:
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
