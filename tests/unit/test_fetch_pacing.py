"""The request path's consumers wait longer per fetch while records stream, and the short
wait again once they come rarely (injected clock)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelbus_delivery.fetch_pacing import FetchPacing, apply_fetch_wait, pace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pacing(clock: Clock, busy_rate: float = 1000) -> FetchPacing:
    return FetchPacing(quiet_ms=5, busy_ms=20, busy_rate=busy_rate, clock=clock)


def _feed(pacing: FetchPacing, clock: Clock, per_s: int, seconds: float) -> list[int]:
    """Records at ``per_s`` in eight getmany calls a second; the waits that came of it."""
    changes = []
    for _ in range(int(seconds * 8)):
        clock.now += 0.125
        if (wait := pacing.received(per_s // 8)) is not None:
            changes.append(wait)
    return changes


def test_a_stream_at_the_busy_rate_gets_the_long_wait_within_one_window() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    assert pacing.received(0) is None  # the first call starts the window
    assert _feed(pacing, clock, per_s=1000, seconds=1.0) == [20]
    assert (pacing.busy, pacing.wait_ms) == (True, 20)
    assert _feed(pacing, clock, per_s=1000, seconds=5.0) == []  # no change, no news


def test_it_stays_long_above_half_the_rate_and_goes_back_below_it() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    pacing.received(0)
    assert _feed(pacing, clock, per_s=2000, seconds=1.0) == [20]
    assert _feed(pacing, clock, per_s=600, seconds=3.0) == []  # 600/s >= 500/s: still busy
    assert _feed(pacing, clock, per_s=400, seconds=1.0) == [5]
    assert _feed(pacing, clock, per_s=900, seconds=3.0) == []  # < 1000/s: stays quiet


def test_one_request_at_a_time_keeps_the_short_wait() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    pacing.received(0)
    assert _feed(pacing, clock, per_s=50, seconds=30.0) == []
    assert pacing.wait_ms == 5


def test_a_long_silence_counts_as_quiet() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    pacing.received(0)
    _feed(pacing, clock, per_s=5000, seconds=1.0)
    clock.now += 0.25  # a getmany that timed out: nothing for 200 ms, then a trickle
    assert pacing.received(0) is None  # the window is still open
    clock.now += 1.0
    assert pacing.received(1) == 5


@pytest.mark.parametrize(("busy_ms", "busy_rate"), [(5, 1000.0), (3, 1000.0), (20, 0.0)])
def test_a_busy_wait_not_above_the_quiet_one_or_no_rate_never_changes_it(
    busy_ms: int, busy_rate: float
) -> None:
    clock = Clock()
    pacing = FetchPacing(quiet_ms=5, busy_ms=busy_ms, busy_rate=busy_rate, clock=clock)
    pacing.received(0)
    assert _feed(pacing, clock, per_s=100_000, seconds=3.0) == []
    assert pacing.wait_ms == 5


def test_reset_goes_back_to_the_quiet_wait() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    pacing.received(0)
    _feed(pacing, clock, per_s=5000, seconds=1.0)
    pacing.reset()
    assert (pacing.busy, pacing.wait_ms) == (False, 5)


def test_pace_sets_the_wait_the_fetcher_sends_with_each_request() -> None:
    clock = Clock()
    pacing = _pacing(clock)
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=5))
    pace(consumer, pacing, {}, "test")
    clock.now += 1.0
    pace(consumer, pacing, {"tp": list(range(1500))}, "test")
    assert consumer._fetcher._fetch_max_wait_ms == 20


def test_a_fetcher_without_the_attribute_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="no _fetch_max_wait_ms"):
        apply_fetch_wait(SimpleNamespace(_fetcher=SimpleNamespace()), 20)


def test_the_real_aiokafka_fetcher_reads_the_attribute_for_each_request() -> None:
    import inspect

    from aiokafka.consumer.fetcher import Fetcher

    source = inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_max_wait_ms" in source


def _answers(clock: Clock, awaiting_ms: int = 1) -> FetchPacing:
    return FetchPacing(quiet_ms=5, busy_ms=20, busy_rate=1000, clock=clock,
                       awaiting_ms=awaiting_ms)


def test_a_reader_awaiting_an_answer_asks_for_the_awaiting_wait_until_none_waits() -> None:
    pacing = _answers(Clock())
    assert pacing.wait_ms == 5
    assert pacing.await_records(True) == 1
    assert pacing.await_records(True) is None  # no change, no news
    assert pacing.wait_ms == 1
    assert pacing.await_records(False) == 5
    assert pacing.await_records(False) is None


def test_answers_coming_once_per_quiet_wait_or_more_keep_the_quiet_wait() -> None:
    clock = Clock()
    pacing = _answers(clock)
    pacing.received(0)
    assert pacing.await_records(True) == 1
    assert _feed(pacing, clock, per_s=200, seconds=1.0) == [5]  # 200/s: one per 5 ms fetch
    assert (pacing.frequent, pacing.wait_ms) == (True, 5)
    assert pacing.await_records(False) is None and pacing.await_records(True) is None
    assert _feed(pacing, clock, per_s=120, seconds=1.0) == [1]  # rarer: the short wait again
    assert _feed(pacing, clock, per_s=120, seconds=3.0) == []


def test_streaming_answers_get_the_busy_wait_even_while_awaited() -> None:
    clock = Clock()
    pacing = _answers(clock)
    pacing.received(0)
    pacing.await_records(True)
    assert _feed(pacing, clock, per_s=2000, seconds=1.0) == [20]
    assert pacing.await_records(False) is None  # busy: the wait does not move
    assert _feed(pacing, clock, per_s=0, seconds=1.0) == [5]
    assert pacing.await_records(True) == 1


def test_an_awaiting_wait_above_the_quiet_one_changes_nothing() -> None:
    pacing = _answers(Clock(), awaiting_ms=50)
    assert pacing.await_records(True) is None
    assert pacing.wait_ms == 5


def test_reset_goes_back_to_the_quiet_wait_from_the_awaiting_one() -> None:
    clock = Clock()
    pacing = _answers(clock)
    pacing.received(0)
    _feed(pacing, clock, per_s=300, seconds=1.0)
    pacing.await_records(True)
    pacing.reset()
    assert (pacing.frequent, pacing.awaiting, pacing.wait_ms) == (False, False, 5)


def test_a_clients_answers_are_paced_with_the_awaiting_wait_and_the_workers_requests_not(
) -> None:
    from modelbus_contract.settings import ModelbusSettings

    settings = ModelbusSettings(kafka_fetch_max_wait_awaiting_ms=2)
    assert FetchPacing.answers(settings).awaiting_ms == 2
    assert FetchPacing.request_path(settings).awaiting_ms is None
