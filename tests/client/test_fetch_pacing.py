"""A client's results listener waits longer per fetch while answers stream and the short wait
again once they stop, through the real broker (the rules, over an injected clock, are in
tests/unit/test_fetch_pacing.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tests.support.waiting import async_wait_for

from modelbus_client.results_listener import ResultsListener
from modelbus_delivery.fetch_pacing import FetchPacing

from .helpers import Raw, produce_batch

pytestmark = pytest.mark.integration

# Read within a second, 5,000 answers fall into at most two rate windows (each 1 s, plus up
# to one 1 s poll): one of them sees at least 2,500 in 2 s, 12 times the busy rate.
ANSWERS = 5_000
BUSY_RATE = 100.0


async def test_the_listener_paces_its_fetches_by_the_rate_answers_come_at(
    kafka_bootstrap: str,
) -> None:
    pacing = FetchPacing(quiet_ms=5, busy_ms=20, busy_rate=BUSY_RATE)
    topic = f"paced-{uuid.uuid4().hex[:10]}"
    listener = ResultsListener(kafka_bootstrap, topic, 5, pacing=pacing)
    await listener.start()
    try:
        fetcher = listener._consumer._fetcher  # type: ignore[union-attr]
        assert fetcher._fetch_max_wait_ms == 5
        waiting = [listener.expect(f"c{i}") for i in range(ANSWERS)]
        await produce_batch(kafka_bootstrap, topic, [
            Raw(b"", None, [("correlation_id", f"c{i}".encode())]) for i in range(ANSWERS)
        ])
        await asyncio.wait_for(asyncio.gather(*waiting), 30)
        await async_wait_for(lambda: pacing.busy, 10, message="the busy wait")
        assert fetcher._fetch_max_wait_ms == 20
        # Nothing more comes: the next windows see no answers, and the wait is short again.
        await async_wait_for(lambda: not pacing.busy, 10, message="the quiet wait")
        assert fetcher._fetch_max_wait_ms == 5
    finally:
        await listener.stop()


async def test_the_listener_asks_for_the_awaiting_wait_while_a_request_waits(
    kafka_bootstrap: str,
) -> None:
    pacing = FetchPacing(quiet_ms=5, busy_ms=20, busy_rate=BUSY_RATE, awaiting_ms=1)
    topic = f"awaiting-{uuid.uuid4().hex[:10]}"
    listener = ResultsListener(kafka_bootstrap, topic, 5, pacing=pacing)
    await listener.start()
    try:
        fetcher = listener._consumer._fetcher  # type: ignore[union-attr]
        assert fetcher._fetch_max_wait_ms == 5  # idle: the quiet wait
        first, second = listener.expect("c1"), listener.expect("c2")
        assert fetcher._fetch_max_wait_ms == 1
        await produce_batch(kafka_bootstrap, topic, [
            Raw(b"", None, [("correlation_id", b"c1")])])
        await asyncio.wait_for(first, 30)
        assert fetcher._fetch_max_wait_ms == 1  # c2 still waits
        listener.forget("c2")
        assert fetcher._fetch_max_wait_ms == 5
        assert not second.done()
        third = listener.expect("c3")
        assert fetcher._fetch_max_wait_ms == 1
        await produce_batch(kafka_bootstrap, topic, [
            Raw(b"", None, [("correlation_id", b"c3")])])
        await asyncio.wait_for(third, 30)
        assert fetcher._fetch_max_wait_ms == 5
    finally:
        await listener.stop()
