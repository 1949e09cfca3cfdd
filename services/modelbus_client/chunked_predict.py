"""Predicting a table of any size: chunks in a bounded window, answers back in input order.

Each chunk is one request carrying the chunking headers of the contract (``chunk_id``,
``chunk_index``, ``chunk_count``). The first chunk goes alone and its answer fixes the model
version for all the others, so one run never mixes versions. A chunk whose request or
answer is over the record limit (``too_large``) is cut in two and each half sent as a chunk of
its own (``chunk_id`` ``ID/INDEX``), down to single rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.chunks import chunk_headers
from modelbus_contract.errors import ModelbusError, TooLarge

from .chunking import Chunk, body_limit, halves
from .tables import to_ipc_stream

# (model, body, version, timeout, extra headers) → the result's headers and table
SendRequest = Callable[
    [str, bytes, str | None, float, Mapping[str, str]], Awaitable[tuple[dict[str, str], pa.Table]]
]

DEFAULT_WINDOW = 8
# Errors of a first chunk that every other chunk would get too: nothing more is sent.
FATAL_CODES = frozenset({"model_not_found", "model_invalid", "bad_request"})


@dataclass(frozen=True)
class ChunkResult:
    """The answer to one chunk: its table, or the error that failed all of its rows."""

    chunk: Chunk
    table: pa.Table | None
    error: ModelbusError | None
    model_version: str

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ChunkPlan:
    """What every chunk of one run shares."""

    model: str
    version: str | None
    timeout_s: float
    chunk_id: str
    chunk_count: int | None
    max_message_bytes: int


async def predict_chunks(
    send: SendRequest,
    plan: ChunkPlan,
    chunks: Iterable[Chunk] | AsyncIterable[Chunk],
    window: int = DEFAULT_WINDOW,
) -> AsyncIterator[ChunkResult]:
    """One result per chunk, in the chunks' order; at most ``window`` chunks in flight.

    When the first chunk fails with an error every chunk would get (``FATAL_CODES``: no such
    model, an invalid one, a refused request), its result is the last one.
    """
    if window < 1:
        raise ValueError(f"the window must be at least 1 chunk, not {window}")
    source = _aiter(chunks)
    first = await anext(source, None)
    if first is None:
        return
    result = await _predict_chunk(send, plan, first, plan.chunk_id)
    yield result
    if result.error is not None and result.error.code in FATAL_CODES:
        return
    if result.ok:  # pin the version the first answer came from
        plan = dataclasses.replace(plan, version=result.model_version)
    running: deque[asyncio.Task[ChunkResult]] = deque()
    try:
        async for chunk in source:
            running.append(asyncio.ensure_future(
                _predict_chunk(send, plan, chunk, plan.chunk_id)
            ))
            if len(running) >= window:
                yield await running.popleft()
        while running:
            yield await running.popleft()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def _predict_chunk(
    send: SendRequest, plan: ChunkPlan, chunk: Chunk, chunk_id: str, count: int | None = None
) -> ChunkResult:
    """Send one chunk (cut in two while it is too large); its rows' answer or error."""
    headers = chunk_headers(chunk_id, chunk.index, count if count else plan.chunk_count)
    body = to_ipc_stream(chunk.table)
    try:
        if len(body) > body_limit(plan.max_message_bytes):
            raise TooLarge(
                f"rows {chunk.start:,} to {chunk.stop - 1:,} take {len(body):,} bytes, over "
                f"the record limit of {plan.max_message_bytes:,} bytes"
            )
        result_headers, table = await send(plan.model, body, plan.version, plan.timeout_s,
                                           headers)
    except TooLarge as exc:
        if chunk.rows < 2:
            return ChunkResult(chunk, None, exc, plan.version or "")
        return await _predict_halves(send, plan, chunk, f"{chunk_id}/{chunk.index}")
    except ModelbusError as exc:
        return ChunkResult(chunk, None, exc, plan.version or "")
    return ChunkResult(chunk, table, None, result_headers.get("model_version", ""))


async def _predict_halves(
    send: SendRequest, plan: ChunkPlan, chunk: Chunk, chunk_id: str
) -> ChunkResult:
    results = await asyncio.gather(
        *(_predict_chunk(send, plan, half, chunk_id, 2) for half in halves(chunk))
    )
    version = results[0].model_version or results[1].model_version
    for result in results:
        if result.error is not None:
            return ChunkResult(chunk, None, result.error, version)
    tables = [r.table for r in results if r.table is not None]
    return ChunkResult(chunk, pa.concat_tables(tables), None, version)


def new_chunk_id() -> str:
    return uuid.uuid4().hex


async def _aiter(chunks: Iterable[Chunk] | AsyncIterable[Chunk]) -> AsyncIterator[Chunk]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk
