"""The chunk window: order, bound, version pinning, splitting of too-large chunks.

The sender is a fake with the worker's behaviour that matters here (answers out of order,
refuses answers over a size, fails rows it is told to); the real path runs in
``tests/e2e/test_large_tables.py``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

import pyarrow as pa
import pytest

from modelbus_client.chunked_predict import ChunkPlan, ChunkResult, predict_chunks
from modelbus_client.chunking import Chunk, chunks_of
from modelbus_client.tables import from_ipc_stream
from modelbus_contract.errors import ModelFailed, ModelNotFound, TooLarge

LIMIT = 1024 * 1024


class FakeWorker:
    """Answers ``y = 2x`` after a random number of turns of the event loop (so answers come
    out of order, the same way each run); records what it was sent."""

    def __init__(self, *, max_answer_rows: int | None = None, fail_on: float | None = None,
                 missing: bool = False) -> None:
        self.sent: list[dict[str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.max_answer_rows = max_answer_rows
        self.fail_on = fail_on
        self.missing = missing
        self.rng = random.Random(0)

    async def __call__(self, model: str, body: bytes, version: str | None, deadline: float,
                       headers: Mapping[str, str]) -> tuple[dict[str, str], pa.Table]:
        self.sent.append({**headers, "model_version": version or ""})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(self.rng.randrange(8)):
                await asyncio.sleep(0)  # a turn of the loop: other calls may answer first
            if self.missing:
                raise ModelNotFound("no model named 'm'")
            table = from_ipc_stream(body)
            x = table.column("x").to_pylist()
            if self.fail_on is not None and self.fail_on in x:
                raise ModelFailed("ValueError: bad row")
            if self.max_answer_rows is not None and len(x) > self.max_answer_rows:
                raise TooLarge("the answer is over the record limit")
            return {"model_version": "7"}, pa.table({"y": [2 * v for v in x]})
        finally:
            self.in_flight -= 1


def _chunks(rows: int, per_chunk: int) -> list[Chunk]:
    table = pa.table({"x": pa.array(range(rows), pa.float64())})
    return list(chunks_of(table.to_batches(), per_chunk))


def _plan(version: str | None = None) -> ChunkPlan:
    return ChunkPlan("m", version, 5.0, "job", None, LIMIT)


async def _collect(worker: FakeWorker, chunks: list[Chunk], window: int,
                   plan: ChunkPlan | None = None) -> list[ChunkResult]:
    return [r async for r in predict_chunks(worker, plan or _plan(), chunks, window)]


async def test_answers_come_in_input_order_with_at_most_window_in_flight() -> None:
    worker = FakeWorker()
    results = await _collect(worker, _chunks(1000, 10), window=4)
    assert [r.chunk.index for r in results] == list(range(100))
    ys = [v for r in results for v in (r.table.column("y").to_pylist() if r.table else [])]
    assert ys == [2.0 * i for i in range(1000)]
    assert worker.most_in_flight == 4
    assert [h["chunk_index"] for h in worker.sent] == [str(i) for i in range(100)]
    assert {h["chunk_id"] for h in worker.sent} == {"job"}


async def test_the_first_chunk_goes_alone_and_pins_the_version() -> None:
    worker = FakeWorker()
    results = await _collect(worker, _chunks(50, 10), window=8)
    assert worker.sent[0]["model_version"] == ""
    assert {h["model_version"] for h in worker.sent[1:]} == {"7"}
    assert {r.model_version for r in results} == {"7"}


async def test_a_chunk_whose_answer_is_too_large_is_cut_until_it_fits() -> None:
    worker = FakeWorker(max_answer_rows=3)
    results = await _collect(worker, _chunks(20, 10), window=2)
    assert all(r.ok for r in results)
    ys = [v for r in results for v in (r.table.column("y").to_pylist() if r.table else [])]
    assert ys == [2.0 * i for i in range(20)]
    pieces = [h for h in worker.sent if h["chunk_id"] != "job"]
    assert {h["chunk_id"] for h in pieces} >= {"job/0", "job/1", "job/0/0", "job/0/1"}
    assert all(h["chunk_count"] == "2" for h in pieces)


async def test_a_failed_chunk_fails_alone() -> None:
    worker = FakeWorker(fail_on=35.0)
    results = await _collect(worker, _chunks(60, 10), window=3)
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    failed = results[3]
    assert isinstance(failed.error, ModelFailed)
    assert (failed.chunk.start, failed.chunk.stop) == (30, 40)


async def test_a_missing_model_on_the_first_chunk_stops_the_run() -> None:
    worker = FakeWorker(missing=True)
    results = await _collect(worker, _chunks(100, 10), window=3)
    assert len(results) == 1 and isinstance(results[0].error, ModelNotFound)
    assert len(worker.sent) == 1


async def test_a_single_row_over_the_limit_is_too_large_without_sending() -> None:
    worker = FakeWorker()
    big = pa.table({"x": pa.array([1.0]), "blob": [b"x" * 2000]})
    plan = ChunkPlan("m", None, 5.0, "job", 1, 1024)
    results = [r async for r in predict_chunks(worker, plan, [Chunk(0, 0, big)])]
    assert isinstance(results[0].error, TooLarge)
    assert "over the record limit of 1,024 bytes" in results[0].error.message
    assert worker.sent == []


async def test_abandoning_the_results_cancels_what_is_in_flight() -> None:
    worker = FakeWorker()
    results = predict_chunks(worker, _plan(), _chunks(1000, 10), 5)
    seen = 0
    async for _ in results:
        seen += 1
        if seen == 3:
            break
    await results.aclose()
    assert worker.in_flight == 0
    assert len(worker.sent) <= 3 + 5


async def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await _collect(FakeWorker(), _chunks(10, 5), window=0)
