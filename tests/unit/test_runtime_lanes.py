"""The delivery runtime's lanes without a broker: each record's task sees its lane, the
bulk lane's records are counted apart and answered through the bulk writer, and an
interactive record holds the bulk lane at its minimum share (records handed to the
runtime's dispatch directly, the writers fakes)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from modelbus_delivery.lane_policy import CURRENT_LANE
from modelbus_delivery.poll_context import ALONE_IN_POLL
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.writer import PublishFailed

INTERACTIVE, BULK = "m.inference.requests", "m.inference.requests.bulk"


class _Writer:
    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    async def send(self, topic: str, key: object, value: bytes | None, headers: object) -> None:
        self.sent.append(value)


class _Quarantine:
    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return []

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        return []

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return []


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_each_record_runs_in_its_lane_and_bulk_answers_use_the_bulk_writer() -> None:
    seen: list[tuple[str, str]] = []
    release = asyncio.Event()
    writer, bulk_writer, clock = _Writer(), _Writer(), Clock()

    async def handle(record: Inbound) -> list[Outgoing]:
        seen.append((record.topic, CURRENT_LANE.get()))
        await release.wait()
        return [Outgoing("m.inference.results", record.key, record.value)]

    runtime = DeliveryRuntime(
        "127.0.0.1:9",
        RuntimeConfig("t", (INTERACTIVE, BULK), "g", max_in_flight=100, bulk_topics=(BULK,),
                      bulk_share=0.5, bulk_min_share=0.1, lane_hold_s=1.0),
        handle, _Quarantine(), writer, clock=clock, bulk_writer=bulk_writer,  # type: ignore[arg-type]
    )
    assert runtime.lanes.bulk_room(0, 0) == 50
    for offset in range(3):
        runtime._dispatch(TopicPartition(BULK, 0), Inbound(BULK, 0, offset, b"k", b"bulk"))
    runtime._dispatch(TopicPartition(INTERACTIVE, 0), Inbound(INTERACTIVE, 0, 0, b"k", b"one"))
    await asyncio.sleep(0)  # the tasks start
    assert sorted(seen) == [(INTERACTIVE, "interactive")] + [(BULK, "bulk")] * 3
    assert (runtime.in_flight, runtime.bulk_in_flight) == (4, 3)
    # Interactive work runs: bulk may hold 10 records in flight, 7 more.
    assert runtime.lanes.bulk_room(runtime.in_flight - runtime.bulk_in_flight, 3) == 7
    release.set()
    await asyncio.gather(*list(runtime._tasks))
    assert (runtime.in_flight, runtime.bulk_in_flight, runtime.handled) == (0, 0, 4)
    assert (writer.sent, bulk_writer.sent) == ([b"one"], [b"bulk"] * 3)
    # The hold time after the last interactive record, then the whole bulk share again.
    assert runtime.lanes.bulk_room(0, 0) == 10
    clock.now += 1.0
    assert runtime.lanes.bulk_room(0, 0) == 50
    assert (runtime.lane_of(BULK), runtime.lane_of(INTERACTIVE)) == ("bulk", "interactive")


def _consumed(topic: str, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", b"v", None, 1, 1, [])


async def test_a_record_alone_in_its_poll_is_told_so_and_records_polled_together_are_not() -> None:
    seen: list[tuple[int, bool]] = []

    async def handle(record: Inbound) -> list[Outgoing]:
        seen.append((record.offset, ALONE_IN_POLL.get()))
        return []

    runtime = DeliveryRuntime(
        "127.0.0.1:9", RuntimeConfig("t", (INTERACTIVE, BULK), "g", bulk_topics=(BULK,)),
        handle, _Quarantine(), _Writer(), bulk_writer=_Writer(),  # type: ignore[arg-type]
    )
    runtime._dispatch_poll({TopicPartition(INTERACTIVE, 0): [_consumed(INTERACTIVE, 0)]})
    runtime._dispatch_poll({TopicPartition(INTERACTIVE, 0): [_consumed(INTERACTIVE, 1)],
                            TopicPartition(BULK, 0): [_consumed(BULK, 0)]})
    runtime._dispatch_poll({TopicPartition(BULK, 0): [_consumed(BULK, 1), _consumed(BULK, 2)]})
    await asyncio.gather(*list(runtime._tasks))
    assert sorted(seen) == [(0, False), (0, True), (1, False), (1, False), (2, False)]
    assert ALONE_IN_POLL.get() is False  # the runtime's own context is left as it was
