"""The client's results listener resolves the answers of one large fetch a chunk per
event-loop turn, through the real broker: answered callers run (and send their next
requests) before the rest of the fetch is resolved."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from modelbus_client.results_listener import ResultsListener

from .helpers import Raw, produce_batch

pytestmark = pytest.mark.integration

ANSWERS = 100


async def test_the_answers_of_one_fetch_are_resolved_a_chunk_per_turn(
    kafka_bootstrap: str,
) -> None:
    topic = f"answers-{uuid.uuid4().hex[:10]}"
    listener = ResultsListener(kafka_bootstrap, topic)
    await listener.start()
    try:
        waiting = {f"c{i}": listener.expect(f"c{i}") for i in range(ANSWERS)}
        resolved_when_resumed: list[int] = []

        async def caller(answer: asyncio.Future[object]) -> None:
            await answer
            resolved_when_resumed.append(sum(f.done() for f in waiting.values()))

        callers = [asyncio.create_task(caller(f)) for f in waiting.values()]
        # one record batch: the listener fetches them together
        await produce_batch(kafka_bootstrap, topic, [
            Raw(b"", None, [("correlation_id", cid.encode())]) for cid in waiting
        ])
        await asyncio.wait_for(asyncio.gather(*callers), 30)
        assert len(resolved_when_resumed) == ANSWERS
        assert resolved_when_resumed[0] <= 32, (
            f"the first caller resumed with {resolved_when_resumed[0]} answers resolved"
        )
        assert all(f.result() == ({"correlation_id": cid}, b"") for cid, f in waiting.items())
    finally:
        await listener.stop()
