"""Micro-batching as plain asyncio: concurrent requests share a predict, answers split back.

Windows and deadlines run on a ``ManualTimers`` clock that moves only when a test advances
it; a model computes until the test releases it. Nothing here depends on how fast the
machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pyarrow as pa
import pytest
from tests.support.timers import ManualTimers
from tests.support.waiting import async_wait_for

from modelbus_contract.errors import InferenceTimeout, ModelFailed
from modelbus_contract.lanes import Lane
from modelbus_delivery.lane_policy import CURRENT_LANE
from modelbus_delivery.poll_context import ALONE_IN_POLL
from modelbus_worker.batching import BatchingPredictor, BatchSettings

WAIT_S = 5.0  # bounds a wait for something that happens within a few turns of the loop


class LinearModel:
    """y = 2a + b; raises for a negative ``a``; ``shrink`` drops the last output row. A
    ``held`` model computes until the test sets ``release``."""

    def __init__(self, shrink: bool = False, held: bool = False) -> None:
        self.calls: list[int] = []
        self.shrink = shrink
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.calls.append(table.num_rows)
        await self.release.wait()
        a, b = table.column("a").to_pylist(), table.column("b").to_pylist()
        if any(x < 0 for x in a):
            raise ModelFailed("negative a")
        y = [2 * x + z for x, z in zip(a, b, strict=True)]
        return pa.table({"y": y[:-1] if self.shrink and len(y) > 1 else y})

    async def close(self) -> None:
        return None


def _request(n: int, rows: int = 1) -> pa.Table:
    return pa.table({"a": [float(n)] * rows, "b": [float(r) for r in range(rows)]})


async def _through_a_window(
    timers: ManualTimers, window_s: float, *requests: Awaitable[pa.Table]
) -> list[Any]:
    """The requests' answers (or errors), once their window has passed on ``timers``."""
    answers = asyncio.gather(*requests, return_exceptions=True)
    await async_wait_for(timers.pending, WAIT_S, interval=0.001, message="a window opened")
    timers.advance(window_s)
    return await answers


async def test_concurrent_requests_share_one_predict_and_get_their_own_rows() -> None:
    model, timers = LinearModel(), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01), timers=lambda: timers)
    tables = [_request(n, rows=1 + n % 3) for n in range(12)]
    answers = await _through_a_window(
        timers, 0.01, *(batching.predict("m", "1", t) for t in tables)
    )
    assert model.calls == [sum(t.num_rows for t in tables)]
    for n, (table, answer) in enumerate(zip(tables, answers, strict=True)):
        assert answer.column("y").to_pylist() == [2.0 * n + r for r in range(table.num_rows)]
    assert batching.batches == 1


async def test_a_full_batch_closes_before_its_window() -> None:
    model, timers = LinearModel(), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=60, max_rows=4),
                                 timers=lambda: timers)
    answers = await asyncio.wait_for(
        asyncio.gather(*(batching.predict("m", "1", _request(n, 2)) for n in range(2))), WAIT_S
    )
    assert model.calls == [4]
    assert [a.num_rows for a in answers] == [2, 2]
    assert timers.now == 0.0  # the window never passed


async def test_one_bad_request_fails_alone_the_others_are_retried_one_by_one() -> None:
    model, timers = LinearModel(), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01), timers=lambda: timers)
    results = await _through_a_window(
        timers, 0.01, *(batching.predict("m", "1", _request(n)) for n in (1, -1, 2))
    )
    assert model.calls == [3, 1, 1, 1]
    assert results[0].column("y").to_pylist() == [2.0]
    assert isinstance(results[1], ModelFailed)
    assert results[2].column("y").to_pylist() == [4.0]


async def test_a_model_that_is_not_row_wise_is_served_unbatched_from_then_on() -> None:
    model, timers = LinearModel(shrink=True), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01), timers=lambda: timers)
    first = await _through_a_window(
        timers, 0.01, *(batching.predict("m", "1", _request(n)) for n in range(3))
    )
    assert model.calls == [3, 1, 1, 1]
    assert [a.num_rows for a in first] == [1, 1, 1]
    await asyncio.gather(*(batching.predict("m", "1", _request(n)) for n in range(2)))
    assert model.calls == [3, 1, 1, 1, 1, 1]


async def test_versions_opted_out_and_different_schemas_are_never_mixed() -> None:
    model, timers = LinearModel(), ManualTimers()
    batching = BatchingPredictor(
        model, BatchSettings(window_s=0.01), batchable=lambda name, version: version != "2",
        timers=lambda: timers,
    )
    other = pa.table({"a": pa.array([1], pa.float32()), "b": pa.array([1], pa.float32())})
    await _through_a_window(
        timers, 0.01,
        batching.predict("m", "1", _request(1)), batching.predict("m", "1", _request(2)),
        batching.predict("m", "2", _request(3)), batching.predict("m", "2", _request(4)),
        batching.predict("m", "1", other),
    )
    assert sorted(model.calls) == [1, 1, 1, 2]


async def test_each_request_keeps_its_own_deadline_inside_a_longer_batch() -> None:
    model, timers = LinearModel(held=True), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01), timers=lambda: timers)
    answers = asyncio.gather(
        batching.predict("m", "1", _request(1), timeout_s=0.05),
        batching.predict("m", "1", _request(2), timeout_s=5),
        return_exceptions=True,
    )
    await async_wait_for(lambda: len(timers.pending()) == 3, WAIT_S, interval=0.001,
                         message="the window and both deadlines set")
    timers.advance(0.01)
    await async_wait_for(lambda: model.calls == [2], WAIT_S, interval=0.001,
                         message="the batch in the model")
    timers.advance(0.1)  # past the quick request's deadline (0.06 s), long before the other's
    model.release.set()
    quick, patient = await answers
    assert isinstance(quick, InferenceTimeout)
    assert patient.column("y").to_pylist() == [4.0]  # type: ignore[union-attr]


@pytest.mark.parametrize("rows", [0])
async def test_empty_tables_go_straight_through(rows: int) -> None:
    model = LinearModel()
    answer = await BatchingPredictor(model).predict("m", "1", _request(1, rows))
    assert (model.calls, answer.num_rows) == ([0], 0)


async def test_a_lone_request_is_not_held_back_by_a_window() -> None:
    model, timers = LinearModel(), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.0), timers=lambda: timers)
    answer = await asyncio.wait_for(batching.predict("m", "1", _request(3)), WAIT_S)
    assert answer.column("y").to_pylist() == [6.0]
    assert model.calls == [1]
    assert (timers.now, timers.pending()) == (0.0, [])  # answered with no time passing


async def test_requests_that_arrive_while_batches_run_go_together_as_the_next_batch() -> None:
    model = LinearModel(held=True)
    batching = BatchingPredictor(model, BatchSettings(max_in_flight=1))
    first = asyncio.create_task(batching.predict("m", "1", _request(1)))
    await async_wait_for(lambda: model.calls == [1], WAIT_S, interval=0.001,
                         message="the first batch running in the model")
    later = [asyncio.create_task(batching.predict("m", "1", _request(n))) for n in (2, 3, 4)]
    # A request for another version, sent after them, reaches the model after anything the
    # batcher sends for them (the loop runs its callbacks in order): once it is there, they
    # have had their chance to go.
    marker = asyncio.create_task(batching.predict("m", "2", _request(0, rows=5)))
    await async_wait_for(lambda: len(model.calls) == 2, WAIT_S, interval=0.001,
                         message="the other version's request in the model")
    assert model.calls == [1, 5]  # queued, not sent: one batch in flight at most
    model.release.set()
    answers = await asyncio.gather(first, *later)
    await marker
    assert model.calls == [1, 5, 3]
    assert [a.column("y").to_pylist() for a in answers] == [[2.0], [4.0], [6.0], [8.0]]


async def test_a_batch_never_grows_past_max_rows() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings(max_rows=4, max_in_flight=2))
    answers = await asyncio.gather(*(batching.predict("m", "1", _request(n, 2)) for n in range(5)))
    assert model.calls == [4, 4, 2]
    assert [a.column("y").to_pylist() for a in answers] == [
        [2.0 * n, 2.0 * n + 1] for n in range(5)
    ]


class StartingModel(LinearModel):
    """Its predict waits for a start (``is_starting`` holds until the test sets
    ``started``), then computes until the test sets ``release``, as the pool's first call
    after a start does."""

    def __init__(self, held: bool = True) -> None:
        super().__init__(held=held)
        self.started = asyncio.Event()
        self.is_starting = False

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.is_starting = True
        try:
            await self.started.wait()
        finally:
            self.is_starting = False
        return await super().predict(name, version, table, timeout_s)


def _starting_batcher(model: StartingModel, timers: ManualTimers) -> BatchingPredictor:
    return BatchingPredictor(model, BatchSettings(window_s=0), timers=lambda: timers,
                             starting=lambda name, version: model.is_starting)


async def _in_the_model(model: LinearModel, calls: list[int]) -> None:
    await async_wait_for(lambda: model.calls == calls, WAIT_S, interval=0.001,
                         message=f"predict calls {calls}")


async def _starting(model: StartingModel) -> None:
    await async_wait_for(lambda: model.is_starting, WAIT_S, interval=0.001,
                         message="the model starting")


async def test_a_deadline_does_not_run_while_the_model_starts() -> None:
    model, timers = StartingModel(held=False), ManualTimers()
    batching = _starting_batcher(model, timers)
    answers = asyncio.gather(
        *(batching.predict("m", "1", _request(n), timeout_s=0.05) for n in range(2))
    )
    await _starting(model)
    timers.advance(0.3)  # a start six times as long as the deadline
    model.started.set()
    assert [a.column("y").to_pylist() for a in await answers] == [[0.0], [2.0]]


async def test_a_request_whose_model_started_just_before_an_expiry_check_keeps_its_deadline(
) -> None:
    # Deadline 1 s, checked at 1 s (starting), 2 s and 3 s; the start ends at 1.8 s and the
    # first predict answers at 2.4 s, 0.6 s after the start: within the deadline.
    model, timers = StartingModel(), ManualTimers()
    batching = _starting_batcher(model, timers)
    answer = asyncio.create_task(batching.predict("m", "1", _request(2), timeout_s=1.0))
    await _starting(model)
    timers.advance(1.8)
    model.started.set()
    await _in_the_model(model, [1])
    timers.advance(0.6)
    assert timers.pending() == [3.0]  # checked at 2 s, still waiting
    model.release.set()
    assert (await answer).column("y").to_pylist() == [4.0]


async def test_after_a_start_the_deadline_runs_again() -> None:
    # A start of 0.9 s, then a predict of 5 s: the deadline of 0.5 s, checked at 0.5 s
    # (starting) and at 1 s (started since the last check), expires at 1.5 s.
    model, timers = StartingModel(), ManualTimers()
    batching = _starting_batcher(model, timers)
    answer = asyncio.create_task(batching.predict("m", "1", _request(2), timeout_s=0.5))
    await _starting(model)
    timers.advance(0.9)
    model.started.set()
    await _in_the_model(model, [1])
    timers.advance(0.1)
    assert timers.pending() == [1.5]  # checked at 1 s, still waiting
    timers.advance(0.5)
    with pytest.raises(InferenceTimeout, match=r"^m/1: no answer within 0\.5s$"):
        await answer
    assert (timers.now, timers.pending()) == (1.5, [])
    await batching.close()


async def test_without_a_start_the_same_deadline_expires() -> None:
    model, timers = StartingModel(), ManualTimers()
    batching = BatchingPredictor(model, BatchSettings(window_s=0), timers=lambda: timers)
    answer = asyncio.create_task(batching.predict("m", "1", _request(1), timeout_s=0.05))
    await _starting(model)
    timers.advance(0.05)
    with pytest.raises(InferenceTimeout, match=r"^m/1: no answer within 0\.05s$"):
        await answer
    await batching.close()


async def _in_lane(lane: Lane, call: Awaitable[pa.Table]) -> pa.Table:
    CURRENT_LANE.set(lane)  # this task's context only, as the runtime sets it per record
    return await call


async def test_an_interactive_request_goes_in_the_next_batch_ahead_of_queued_bulk_ones() -> None:
    model = LinearModel(held=True)
    batching = BatchingPredictor(model, BatchSettings(max_rows=4, max_in_flight=1))
    first = asyncio.create_task(_in_lane("bulk", batching.predict("m", "1", _request(1, 2))))
    await _in_the_model(model, [2])
    bulk = [asyncio.create_task(_in_lane("bulk", batching.predict("m", "1", _request(n, 2))))
            for n in (2, 3, 4)]
    urgent = asyncio.create_task(
        _in_lane("interactive", batching.predict("m", "1", _request(9)))
    )
    marker = asyncio.create_task(batching.predict("m", "2", _request(0, rows=5)))
    await _in_the_model(model, [2, 5])
    model.release.set()
    answers = await asyncio.gather(first, *bulk)
    assert (await urgent).column("y").to_pylist() == [18.0]
    await marker
    # The interactive row goes alone in the batch after the running one, then bulk ones.
    assert model.calls == [2, 5, 1, 4, 2]
    assert [a.column("y").to_pylist() for a in answers] == [
        [2.0 * n, 2.0 * n + 1] for n in (1, 2, 3, 4)
    ]


class PeakModel(LinearModel):
    """A held ``LinearModel`` that yields once inside every predict, so batches sent at the
    same time overlap there; ``peak`` is the most predicts it ran at once."""

    def __init__(self) -> None:
        super().__init__(held=True)
        self.running = self.peak = 0

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0)
            return await super().predict(name, version, table, timeout_s)
        finally:
            self.running -= 1


async def _interactive_then_bulk(clock_after_interactive: float) -> PeakModel:
    """One interactive request at t=0, then four bulk requests of one batch each at
    ``clock_after_interactive``, while the interactive one computes; the model answers
    once all are queued."""
    model, now = PeakModel(), [0.0]
    batching = BatchingPredictor(model, BatchSettings(max_rows=2, max_in_flight=2,
                                                      interactive_hold_s=0.25),
                                 clock=lambda: now[0])
    urgent = asyncio.create_task(_in_lane("interactive", batching.predict("m", "1", _request(9))))
    await _in_the_model(model, [1])
    now[0] = clock_after_interactive
    bulk = [asyncio.create_task(_in_lane("bulk", batching.predict("m", "1", _request(n, 2))))
            for n in range(4)]
    marker = asyncio.create_task(batching.predict("m", "2", _request(0, rows=5)))
    await async_wait_for(lambda: 5 in model.calls, WAIT_S, interval=0.001,
                         message="the other version's request in the model")
    model.release.set()
    answers = await asyncio.gather(*bulk)
    assert (await urgent).column("y").to_pylist() == [18.0]
    await marker
    assert [a.column("y").to_pylist() for a in answers] == [
        [2.0 * n, 2.0 * n + 1] for n in range(4)
    ]
    return model


async def test_bulk_batches_run_one_at_a_time_while_the_versions_interactive_callers_are_about(
) -> None:
    model = await _interactive_then_bulk(clock_after_interactive=0.2)
    # Nothing of the bulk lane went beside the interactive batch, nor beside each other
    # (the other version's request is alone in its own queue and counts apart).
    assert model.calls == [1, 5, 2, 2, 2, 2]
    assert model.peak == 2  # the interactive batch and the other version's request


async def test_after_the_hold_bulk_batches_are_pipelined_again() -> None:
    model = await _interactive_then_bulk(clock_after_interactive=0.3)
    # One bulk batch went beside the running interactive one at once, before the marker.
    assert model.calls == [1, 2, 5, 2, 2, 2]
    assert model.peak == 3


async def test_an_interactive_request_goes_beside_the_one_bulk_batch_running() -> None:
    model, now = LinearModel(held=True), [0.0]
    batching = BatchingPredictor(model, BatchSettings(max_rows=2, max_in_flight=2),
                                 clock=lambda: now[0])
    first = asyncio.create_task(_in_lane("interactive", batching.predict("m", "1", _request(9))))
    await _in_the_model(model, [1])
    model.release.set()
    await first
    model.release.clear()  # held again; the version's interactive caller was here at t=0
    bulk = [asyncio.create_task(_in_lane("bulk", batching.predict("m", "1", _request(n, 2))))
            for n in range(3)]
    await _in_the_model(model, [1, 2])
    urgent = asyncio.create_task(_in_lane("interactive", batching.predict("m", "1", _request(7))))
    await _in_the_model(model, [1, 2, 1])  # at once: one bulk batch ahead of it, not two
    model.release.set()
    await asyncio.gather(*bulk)
    assert (await urgent).column("y").to_pylist() == [14.0]
    assert model.calls == [1, 2, 1, 2, 2]


async def _alone_in_poll(call: Awaitable[pa.Table]) -> pa.Table:
    ALONE_IN_POLL.set(True)  # this task's context only, as the runtime sets it per record
    return await call


async def test_a_request_alone_in_its_poll_goes_to_the_model_in_its_own_task() -> None:
    model = LinearModel(held=True)
    batching = BatchingPredictor(model, BatchSettings(max_in_flight=1))
    lone = asyncio.create_task(_alone_in_poll(batching.predict("m", "1", _request(1))))
    await _in_the_model(model, [1])
    assert batching._runs == set()  # no batch task: the caller's task calls the model
    # Requests arriving meanwhile queue behind it as behind a running batch.
    later = [asyncio.create_task(batching.predict("m", "1", _request(n))) for n in (2, 3)]
    marker = asyncio.create_task(batching.predict("m", "2", _request(0, rows=5)))
    await _in_the_model(model, [1, 5])
    model.release.set()
    answers = await asyncio.gather(lone, *later)
    await marker
    assert model.calls == [1, 5, 2]
    assert [a.column("y").to_pylist() for a in answers] == [[2.0], [4.0], [6.0]]
    assert batching._queues == {}


async def test_a_lone_request_joins_the_queue_of_a_version_that_has_one() -> None:
    model = LinearModel(held=True)
    batching = BatchingPredictor(model, BatchSettings(max_in_flight=1))
    first = asyncio.create_task(batching.predict("m", "1", _request(1)))
    await _in_the_model(model, [1])
    lone = [asyncio.create_task(_alone_in_poll(batching.predict("m", "1", _request(n))))
            for n in (2, 3)]
    marker = asyncio.create_task(batching.predict("m", "2", _request(0, rows=5)))
    await _in_the_model(model, [1, 5])  # queued, not sent: one batch in flight at most
    model.release.set()
    answers = await asyncio.gather(first, *lone)
    await marker
    assert model.calls == [1, 5, 2]
    assert [a.column("y").to_pylist() for a in answers] == [[2.0], [4.0], [6.0]]


async def test_a_lone_request_that_fails_fails_alone_and_frees_its_version() -> None:
    model = LinearModel()
    batching = BatchingPredictor(model, BatchSettings())
    with pytest.raises(ModelFailed, match="negative a"):
        await _alone_in_poll(batching.predict("m", "1", _request(-1)))
    assert batching._queues == {}
    assert (await _alone_in_poll(batching.predict("m", "1", _request(2)))).column(
        "y").to_pylist() == [4.0]
