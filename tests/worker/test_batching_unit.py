"""Micro-batching as plain asyncio: concurrent requests share a predict, answers split back."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from modelbus_contract.errors import InferenceTimeout, ModelFailed
from modelbus_worker.batching import BatchingPredictor, BatchSettings


class LinearModel:
    """y = 2a + b; raises for a negative ``a``; ``shrink`` drops the last output row."""

    def __init__(self, shrink: bool = False, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.shrink = shrink
        self.delay_s = delay_s

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.calls.append(table.num_rows)
        await asyncio.sleep(self.delay_s)
        a, b = table.column("a").to_pylist(), table.column("b").to_pylist()
        if any(x < 0 for x in a):
            raise ModelFailed("negative a")
        y = [2 * x + z for x, z in zip(a, b, strict=True)]
        return pa.table({"y": y[:-1] if self.shrink and len(y) > 1 else y})

    async def close(self) -> None:
        return None


def _request(n: int, rows: int = 1) -> pa.Table:
    return pa.table({"a": [float(n)] * rows, "b": [float(r) for r in range(rows)]})


async def test_concurrent_requests_share_one_predict_and_get_their_own_rows() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01))
    tables = [_request(n, rows=1 + n % 3) for n in range(12)]
    answers = await asyncio.gather(*(batching.predict("m", "1", t) for t in tables))
    assert model.calls == [sum(t.num_rows for t in tables)]
    for n, (table, answer) in enumerate(zip(tables, answers, strict=True)):
        assert answer.column("y").to_pylist() == [2.0 * n + r for r in range(table.num_rows)]
    assert batching.batches == 1


async def test_a_full_batch_closes_before_its_window() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings(window_s=60, max_rows=4))
    answers = await asyncio.wait_for(
        asyncio.gather(*(batching.predict("m", "1", _request(n, 2)) for n in range(2))), 5
    )
    assert model.calls == [4]
    assert [a.num_rows for a in answers] == [2, 2]


async def test_one_bad_request_fails_alone_the_others_are_retried_one_by_one() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01))
    results = await asyncio.gather(
        *(batching.predict("m", "1", _request(n)) for n in (1, -1, 2)), return_exceptions=True
    )
    assert model.calls == [3, 1, 1, 1]
    assert results[0].column("y").to_pylist() == [2.0]  # type: ignore[union-attr]
    assert isinstance(results[1], ModelFailed)
    assert results[2].column("y").to_pylist() == [4.0]  # type: ignore[union-attr]


async def test_a_model_that_is_not_row_wise_is_served_unbatched_from_then_on() -> None:
    model = LinearModel(shrink=True)
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01))
    first = await asyncio.gather(*(batching.predict("m", "1", _request(n)) for n in range(3)))
    assert model.calls == [3, 1, 1, 1]
    assert [a.num_rows for a in first] == [1, 1, 1]
    await asyncio.gather(*(batching.predict("m", "1", _request(n)) for n in range(2)))
    assert model.calls == [3, 1, 1, 1, 1, 1]


async def test_versions_opted_out_and_different_schemas_are_never_mixed() -> None:
    model = LinearModel()
    batching = BatchingPredictor(
        model, BatchSettings(window_s=0.01), batchable=lambda name, version: version != "2"
    )
    other = pa.table({"a": pa.array([1], pa.float32()), "b": pa.array([1], pa.float32())})
    await asyncio.gather(
        batching.predict("m", "1", _request(1)), batching.predict("m", "1", _request(2)),
        batching.predict("m", "2", _request(3)), batching.predict("m", "2", _request(4)),
        batching.predict("m", "1", other),
    )
    assert sorted(model.calls) == [1, 1, 1, 2]


async def test_each_request_keeps_its_own_deadline_inside_a_longer_batch() -> None:
    model = LinearModel(delay_s=0.3)
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01))
    quick, patient = await asyncio.gather(
        batching.predict("m", "1", _request(1), timeout_s=0.05),
        batching.predict("m", "1", _request(2), timeout_s=5),
        return_exceptions=True,
    )
    assert isinstance(quick, InferenceTimeout)
    assert patient.column("y").to_pylist() == [4.0]  # type: ignore[union-attr]


@pytest.mark.parametrize("rows", [0])
async def test_empty_tables_go_straight_through(rows: int) -> None:
    model = LinearModel()
    answer = await BatchingPredictor(model).predict("m", "1", _request(1, rows))
    assert (model.calls, answer.num_rows) == ([0], 0)


async def test_a_lone_request_is_not_held_back_by_a_window() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await batching.predict("m", "1", _request(3))
    assert answer.column("y").to_pylist() == [6.0]
    assert model.calls == [1]
    assert loop.time() - started < 0.05


async def test_requests_that_arrive_while_batches_run_go_together_as_the_next_batch() -> None:
    model = LinearModel(delay_s=0.1)
    batching = BatchingPredictor(model, BatchSettings(max_in_flight=1))
    first = asyncio.create_task(batching.predict("m", "1", _request(1)))
    await asyncio.sleep(0.03)  # the first batch is running in the model
    later = [asyncio.create_task(batching.predict("m", "1", _request(n))) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert model.calls == [1]  # queued, not sent: one batch in flight at most
    answers = await asyncio.gather(first, *later)
    assert model.calls == [1, 3]
    assert [a.column("y").to_pylist() for a in answers] == [[2.0], [4.0], [6.0], [8.0]]


async def test_a_batch_never_grows_past_max_rows() -> None:
    model = LinearModel(delay_s=0.02)
    batching = BatchingPredictor(model, BatchSettings(max_rows=4, max_in_flight=2))
    answers = await asyncio.gather(*(batching.predict("m", "1", _request(n, 2)) for n in range(5)))
    assert model.calls == [4, 4, 2]
    assert [a.column("y").to_pylist() for a in answers] == [
        [2.0 * n, 2.0 * n + 1] for n in range(5)
    ]


class StartingModel(LinearModel):
    """Its first predict waits for a start of ``start_s`` (``starting`` holds), then
    computes for ``predict_s`` more, as the pool's first call after a start does."""

    def __init__(self, start_s: float, predict_s: float = 0.0) -> None:
        super().__init__(delay_s=predict_s)
        self.start_s = start_s
        self.is_starting = False

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.is_starting = True
        try:
            await asyncio.sleep(self.start_s)
        finally:
            self.is_starting = False
        return await super().predict(name, version, table, timeout_s)


async def test_a_deadline_does_not_run_while_the_model_starts() -> None:
    model = StartingModel(start_s=0.3)
    batching = BatchingPredictor(model, BatchSettings(window_s=0),
                                 starting=lambda name, version: model.is_starting)
    answers = await asyncio.gather(
        *(batching.predict("m", "1", _request(n), timeout_s=0.05) for n in range(2))
    )
    assert [a.column("y").to_pylist() for a in answers] == [[0.0], [2.0]]


async def test_a_request_whose_model_started_just_before_an_expiry_check_keeps_its_deadline(
) -> None:
    # Deadline 1 s, checked at 1 s (starting), 2 s and 3 s; the start ends at 1.8 s and the
    # first predict answers at 2.4 s, 0.6 s after the start: within the deadline. Each step
    # has 0.4 s or more to spare, for a loaded machine's late timers.
    model = StartingModel(start_s=1.8, predict_s=0.6)
    batching = BatchingPredictor(model, BatchSettings(window_s=0),
                                 starting=lambda name, version: model.is_starting)
    answer = await batching.predict("m", "1", _request(2), timeout_s=1.0)
    assert answer.column("y").to_pylist() == [4.0]


async def test_after_a_start_the_deadline_runs_again() -> None:
    model = StartingModel(start_s=0.9, predict_s=5.0)
    batching = BatchingPredictor(model, BatchSettings(window_s=0),
                                 starting=lambda name, version: model.is_starting)
    started = asyncio.get_running_loop().time()
    with pytest.raises(InferenceTimeout, match=r"^m/1: no answer within 0\.5s$"):
        await batching.predict("m", "1", _request(2), timeout_s=0.5)
    assert 0.9 < asyncio.get_running_loop().time() - started < 3.0
    await batching.close()


async def test_without_a_start_the_same_deadline_expires() -> None:
    model = StartingModel(start_s=0.3)
    batching = BatchingPredictor(model, BatchSettings(window_s=0))
    with pytest.raises(InferenceTimeout, match=r"^m/1: no answer within 0\.05s$"):
        await batching.predict("m", "1", _request(1), timeout_s=0.05)
