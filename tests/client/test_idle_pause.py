"""A client's results listener stops fetching while no request waits, and reads on from where
it stopped once one does, through the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from tests.support.waiting import async_wait_for

from modelbus_client.results_listener import ResultsListener

from .helpers import Raw, produce_batch

pytestmark = pytest.mark.integration


def answer(cid: str) -> Raw:
    return Raw(cid.encode(), None, [("correlation_id", cid.encode()), ("status", b"ok")])


async def test_an_idle_listener_pauses_and_a_waiting_request_resumes_it(
    kafka_bootstrap: str,
) -> None:
    topic = f"idle-{uuid.uuid4().hex[:10]}"
    listener = ResultsListener(kafka_bootstrap, topic, 5, idle_pause_s=0.0)
    await listener.start()
    try:
        consumer = listener._consumer
        assert consumer is not None
        await async_wait_for(lambda: not listener.fetching, 10, message="the idle pause")
        assert consumer.paused() == {TopicPartition(topic, 0)}
        # Answers nobody waits for, written while the reader does not fetch.
        await produce_batch(kafka_bootstrap, topic, [answer(f"stale{i}") for i in range(3)])

        first = listener.expect("c1")
        assert listener.fetching  # resumed at once, not after the pause's delay
        await produce_batch(kafka_bootstrap, topic, [answer("c1")])
        headers, value = await asyncio.wait_for(first, 30)
        assert (headers["correlation_id"], value) == ("c1", b"c1")
        # Read on from where it stopped: the three stale answers, then c1's.
        assert await consumer.position(TopicPartition(topic, 0)) == 4

        await async_wait_for(lambda: not listener.fetching, 10, message="the pause again")
        second = listener.expect("c2")
        assert listener.fetching
        await produce_batch(kafka_bootstrap, topic, [answer("c2")])
        assert (await asyncio.wait_for(second, 30))[1] == b"c2"
    finally:
        await listener.stop()


async def test_a_listener_keeps_fetching_while_a_request_waits(kafka_bootstrap: str) -> None:
    """With no delay before the pause, a waiting request still keeps the reader fetching:
    its answer, written only after the reader went through many fetch turns, arrives."""
    topic = f"idle-{uuid.uuid4().hex[:10]}"
    listener = ResultsListener(kafka_bootstrap, topic, 5, idle_pause_s=0.0)
    await listener.start()
    try:
        waiting = listener.expect("c1")
        reads_before = listener.reads
        await produce_batch(kafka_bootstrap, topic, [answer("other")])  # not for c1
        await async_wait_for(lambda: listener.reads > reads_before, 10, message="a read")
        assert listener.fetching and not waiting.done()
        await produce_batch(kafka_bootstrap, topic, [answer("c1")])
        assert (await asyncio.wait_for(waiting, 30))[1] == b"c1"
    finally:
        await listener.stop()
