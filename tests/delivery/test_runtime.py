"""The delivery runtime against the real broker: commit watermarks, retry budget,
quarantine, refused outputs, undecodable records, per-key order and rebalances."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tests.client.helpers import Raw, produce_batch
from tests.support.kafka import produce, read_topic
from tests.support.raw_records import produce_raw
from tests.support.waiting import async_wait_for

from modelbus_contract.channels import TopicSpec
from modelbus_contract.headers import header_dict
from modelbus_delivery.dlq import dlq_copy, dlq_note
from modelbus_delivery.records import Inbound, Outgoing, PoisonRecord
from modelbus_delivery.retry import Backoff
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.topics import ensure_topics
from modelbus_delivery.writer import PublishFailed, RecordTooLarge, TopicWriter

pytestmark = pytest.mark.integration


class DlqQuarantine:
    """The plainest quarantine: a DLQ copy (or note) with the reason."""

    def __init__(self, dlq: str) -> None:
        self.dlq = dlq
        self.refused: list[PublishFailed] = []

    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return [dlq_copy(self.dlq, record, "internal", reason)]

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        self.refused.append(refused)
        return [dlq_copy(self.dlq, record, "too_large", refused.reason)]

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return [dlq_note(self.dlq, topic, partition, offset, "bad_request", reason)]


class Topics:
    def __init__(self) -> None:
        stem = f"rt-{uuid.uuid4().hex[:10]}"
        self.source, self.out, self.dlq, self.group = (
            f"{stem}.in", f"{stem}.out", f"{stem}.dlq", f"{stem}.group"
        )


Handler = Callable[[Inbound], Awaitable[list[Outgoing]]]


@pytest.fixture
async def make_runtime(
    kafka_bootstrap: str,
) -> AsyncIterator[Callable[..., Awaitable[DeliveryRuntime]]]:
    started: list[tuple[DeliveryRuntime, TopicWriter]] = []

    async def make(
        topics: Topics, handler: Handler, *, partitions: int = 1, ordered: bool = False,
        max_request_size: int = 1_048_576, quarantine: DlqQuarantine | None = None,
        max_in_flight: int = 32,
    ) -> DeliveryRuntime:
        await ensure_topics(kafka_bootstrap, [
            TopicSpec(topics.source, partitions), TopicSpec(topics.out), TopicSpec(topics.dlq)
        ])
        writer = TopicWriter(kafka_bootstrap, max_request_size=max_request_size)
        await writer.start()
        runtime = DeliveryRuntime(
            kafka_bootstrap,
            RuntimeConfig(name="test", topics=(topics.source,), group_id=topics.group,
                          ordered_by_key=ordered, retry_budget=3, max_in_flight=max_in_flight),
            handler, quarantine or DlqQuarantine(topics.dlq), writer, Backoff(0.01, 0.05),
        )
        await runtime.start()
        started.append((runtime, writer))
        return runtime

    yield make
    for runtime, writer in started:
        await runtime.stop()
        await writer.stop()


async def _committed(bootstrap: str, topics: Topics, partition: int = 0) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=topics.group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topics.source, partition))
    finally:
        await consumer.stop()


def _echo(topics: Topics) -> Handler:
    async def handle(record: Inbound) -> list[Outgoing]:
        return [Outgoing(topics.out, record.key, record.value)]

    return handle


async def test_the_offset_is_committed_only_once_the_outputs_are_published(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics, release, entered = Topics(), asyncio.Event(), asyncio.Event()

    async def slow(record: Inbound) -> list[Outgoing]:
        if record.value == b"one":
            entered.set()
            await release.wait()
        return [Outgoing(topics.out, record.key, record.value)]

    runtime = await make_runtime(topics, slow, partitions=2)
    await produce(kafka_bootstrap, topics.source, b"one", key=b"k", partition=0)
    await asyncio.wait_for(entered.wait(), 30)
    # A record of the other partition finishes: the commit round it asks for (seen on the
    # broker) happens while "one" is unfinished, and leaves partition 0 uncommitted.
    await produce(kafka_bootstrap, topics.source, b"two", key=b"k", partition=1)
    await async_wait_for(lambda: _is(kafka_bootstrap, topics, 1, partition=1), 30,
                         message="partition 1 committed")
    # Not past the unfinished record: never named, or named at its own offset.
    assert await _committed(kafka_bootstrap, topics, partition=0) in (None, 0)
    release.set()
    await async_wait_for(lambda: runtime.handled == 2, 30, message="both records handled")
    await async_wait_for(
        lambda: _committed(kafka_bootstrap, topics), 30, message="offset committed"
    )
    assert await _committed(kafka_bootstrap, topics) == 1
    out = await read_topic(kafka_bootstrap, topics.out)
    assert sorted((r.key, r.value) for r in out) == [(b"k", b"one"), (b"k", b"two")]


async def test_a_large_fetch_is_handed_out_a_chunk_per_event_loop_turn(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    """200 records waiting, room for 256 in flight: the first handlers run (and their
    answers leave) when only the first chunk was handed out, not the whole fetch."""
    topics, seen = Topics(), []
    await ensure_topics(kafka_bootstrap, [TopicSpec(topics.source)])
    await produce_batch(  # one record batch: fetched together
        kafka_bootstrap, topics.source, [Raw(str(i).encode(), None) for i in range(200)]
    )
    runtime: DeliveryRuntime | None = None

    async def note(record: Inbound) -> list[Outgoing]:
        assert runtime is not None
        seen.append(runtime.in_flight)  # records handed out and not finished
        return [Outgoing(topics.out, record.key, record.value)]

    runtime = await make_runtime(topics, note, max_in_flight=256)
    await async_wait_for(lambda: runtime.handled == 200, 30, message="every record handled")
    assert len(seen) == 200
    assert seen[0] <= 32, f"the first handler ran with {seen[0]} records handed out"
    out = await read_topic(kafka_bootstrap, topics.out)
    assert sorted(int(r.value) for r in out) == list(range(200))


async def test_a_failing_record_spends_its_retry_budget_then_goes_to_the_dlq(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics = Topics()
    calls: dict[bytes, int] = {}

    async def handle(record: Inbound) -> list[Outgoing]:
        value = record.value or b""
        calls[value] = calls.get(value, 0) + 1
        if value == b"bad":
            raise RuntimeError("cannot handle this one")
        if value == b"poison":
            raise PoisonRecord("never handleable")
        return [Outgoing(topics.out, None, value)]

    runtime = await make_runtime(topics, handle)
    for value in (b"bad", b"poison", b"good"):
        await produce(kafka_bootstrap, topics.source, value)
    await async_wait_for(lambda: runtime.handled == 3, 30, message="three records done")
    assert calls == {b"bad": 3, b"poison": 1, b"good": 1}
    assert runtime.quarantined == 2
    dlq = await read_topic(kafka_bootstrap, topics.dlq)
    reasons = {r.value: header_dict(r.headers)["dlq_error_message"] for r in dlq}
    assert reasons == {
        b"bad": "failed 3 times: RuntimeError: cannot handle this one",
        b"poison": "never handleable",
    }
    assert [r.value for r in await read_topic(kafka_bootstrap, topics.out)] == [b"good"]
    await async_wait_for(lambda: _is(kafka_bootstrap, topics, 3), 30, message="commit at end")


async def _is(bootstrap: str, topics: Topics, offset: int, partition: int = 0) -> bool:
    return await _committed(bootstrap, topics, partition) == offset


async def test_an_output_the_broker_refuses_is_replaced_by_the_quarantine_offer(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics = Topics()
    quarantine = DlqQuarantine(topics.dlq)

    async def bloat(record: Inbound) -> list[Outgoing]:
        return [Outgoing(topics.out, None, (record.value or b"") * 200_000)]

    runtime = await make_runtime(topics, bloat, max_request_size=100_000, quarantine=quarantine)
    await produce(kafka_bootstrap, topics.source, b"abcdefgh")
    await async_wait_for(lambda: runtime.handled == 1, 30, message="record handled")
    (refused,) = quarantine.refused
    assert isinstance(refused, RecordTooLarge) and "MessageSizeTooLarge" in refused.reason
    dlq = await read_topic(kafka_bootstrap, topics.dlq)
    assert [(r.value, header_dict(r.headers)["dlq_error_code"]) for r in dlq] == [
        (b"abcdefgh", "too_large")
    ]
    assert await read_topic(kafka_bootstrap, topics.out) == []
    await async_wait_for(lambda: _is(kafka_bootstrap, topics, 1), 30, message="commit at end")


async def test_a_record_the_client_cannot_decode_is_noted_and_skipped(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics = Topics()
    await ensure_topics(kafka_bootstrap, [TopicSpec(topics.source)])
    await produce(kafka_bootstrap, topics.source, b"before")
    bad = await produce_raw(kafka_bootstrap, topics.source, b"x", headers=[(b"\xff\xfe", b"v")])
    await produce(kafka_bootstrap, topics.source, b"after")
    runtime = await make_runtime(topics, _echo(topics))
    await async_wait_for(lambda: runtime.handled == 2, 30, message="both good records handled")
    assert [r.value for r in await read_topic(kafka_bootstrap, topics.out)] == [
        b"before", b"after"
    ]
    notes = [header_dict(r.headers) for r in await read_topic(kafka_bootstrap, topics.dlq)]
    assert [(n["dlq_offset"], n["dlq_error_code"]) for n in notes] == [(str(bad.offset),
                                                                        "bad_request")]
    assert "UnicodeDecodeError" in notes[0]["dlq_error_message"]
    await async_wait_for(lambda: _is(kafka_bootstrap, topics, 3), 30, message="commit at end")


async def test_records_with_the_same_key_are_handled_in_order(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics, b1_done = Topics(), asyncio.Event()
    done: list[bytes] = []

    async def handle(record: Inbound) -> list[Outgoing]:
        if record.value == b"a1":
            # Held until b1, produced after a2, is done: a2 was handed out meanwhile.
            await b1_done.wait()
        done.append(record.value or b"")
        if record.value == b"b1":
            b1_done.set()
        return []

    runtime = await make_runtime(topics, handle, ordered=True)
    for key, value in ((b"a", b"a1"), (b"a", b"a2"), (b"b", b"b1")):
        await produce(kafka_bootstrap, topics.source, value, key=key)
    await async_wait_for(lambda: runtime.handled == 3, 30, message="three records done")
    # b1 did not wait for key a; a2 waited for a1 although it was handed out before b1.
    assert done == [b"b1", b"a1", b"a2"]


async def test_a_failed_commit_on_revoke_still_forgets_the_revoked_partitions() -> None:
    topics = Topics()
    runtime = DeliveryRuntime(
        "127.0.0.1:1", RuntimeConfig(name="t", topics=(topics.source,), group_id=topics.group),
        _echo(topics), DlqQuarantine(topics.dlq), TopicWriter("127.0.0.1:1"),
    )
    tp = TopicPartition(topics.source, 0)
    runtime.tracker.started(tp, 7)

    async def failing_commit() -> None:
        raise KafkaError("commit refused during the rebalance")

    runtime.commit = failing_commit  # type: ignore[method-assign]
    await runtime.on_revoked([tp])
    await runtime.on_assigned([])  # it went to another member
    assert runtime.tracker.committable() == {}
    assert runtime.tracker.next_offsets() == {}


class _GroupOffsets:
    """What the runtime asks of its consumer when partitions come back: the group's
    committed offsets (as a broker that kept, or lost, them answers) and where it seeks."""

    def __init__(self, committed: dict[TopicPartition, int]) -> None:
        self._committed = committed
        self.seeks: dict[TopicPartition, int] = {}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


@pytest.mark.parametrize("broker_kept_the_commit", [True, False])
async def test_a_partition_that_comes_back_keeps_its_records_in_flight(
    broker_kept_the_commit: bool,
) -> None:
    topics = Topics()
    runtime = DeliveryRuntime(
        "127.0.0.1:1", RuntimeConfig(name="t", topics=(topics.source,), group_id=topics.group),
        _echo(topics), DlqQuarantine(topics.dlq), TopicWriter("127.0.0.1:1"),
    )
    back, gone = TopicPartition(topics.source, 0), TopicPartition(topics.source, 1)
    for tp in (back, gone):
        runtime.tracker.started(tp, 7)
        runtime.tracker.started(tp, 8)
        runtime.tracker.finished(tp, 8)
    runtime.tracker.mark_committed({back: 7, gone: 7})
    group = _GroupOffsets({back: 7} if broker_kept_the_commit else {})
    runtime._consumer = group  # type: ignore[assignment]

    async def no_commit() -> None:
        return None

    runtime.commit = no_commit  # type: ignore[method-assign]
    await runtime.on_revoked([back, gone])
    await runtime.on_assigned([back])
    if not broker_kept_the_commit:  # another log: start over from what the group says
        assert group.seeks == {}
        assert runtime.tracker.next_offsets() == {}
        return
    assert group.seeks == {back: 9}  # fetching resumes after offset 8
    assert runtime.tracker.next_offsets() == {back: 9}
    assert runtime.tracker.committable() == {}  # offset 7 is still running
    runtime.tracker.finished(back, 7)
    assert runtime.tracker.committable() == {back: 9}


async def test_a_second_member_takes_partitions_and_every_record_is_handled(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics = Topics()
    seen: list[bytes] = []

    async def handle(record: Inbound) -> list[Outgoing]:
        seen.append(record.value or b"")
        return [Outgoing(topics.out, record.key, record.value)]

    first = await make_runtime(topics, handle, partitions=2)
    sent = []
    for n in range(20):
        sent.append(f"r{n}".encode())
        await produce(kafka_bootstrap, topics.source, sent[-1], key=f"k{n}".encode())
    second = await make_runtime(topics, handle, partitions=2)
    for n in range(20, 40):
        sent.append(f"r{n}".encode())
        await produce(kafka_bootstrap, topics.source, sent[-1], key=f"k{n}".encode())
    # A record counts as handled once its output is acknowledged, after its handler ran:
    # wait for both, so the last handler call is not caught between the two.
    await async_wait_for(
        lambda: set(seen) == set(sent) and first.handled + second.handled == len(seen),
        60, message="all 40 records handled and their outputs acknowledged",
    )

    async def all_committed() -> bool:
        ends = {0: 0, 1: 0}
        for r in await read_topic(kafka_bootstrap, topics.source):
            ends[r.partition] = r.offset + 1
        return all([await _committed(kafka_bootstrap, topics, p) == e for p, e in ends.items()])

    await async_wait_for(all_committed, 60, message="both partitions committed to their end")


async def test_a_record_in_flight_when_a_member_joins_is_finished_not_handled_again(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    topics, release, entered = Topics(), asyncio.Event(), asyncio.Event()
    seen: list[bytes] = []

    async def handle(record: Inbound) -> list[Outgoing]:
        seen.append(record.value or b"")
        if record.value == b"slow":
            entered.set()
            await release.wait()
        return [Outgoing(topics.out, record.key, record.value)]

    first = await make_runtime(topics, handle, partitions=2)
    for value in (b"slow", b"quick"):  # both on partition 0, both in flight at once
        await produce_raw(kafka_bootstrap, topics.source, value, key=b"k")
    await asyncio.wait_for(entered.wait(), 30)
    revoking = first.on_revoked

    async def revoked(partitions: list[TopicPartition]) -> None:
        # The slow record is still running when its partition is taken away; it finishes
        # while the revocation waits for the records in flight.
        asyncio.get_running_loop().call_soon(release.set)
        await revoking(partitions)

    first.on_revoked = revoked  # type: ignore[method-assign]
    second = await make_runtime(topics, handle, partitions=2)
    both = {TopicPartition(topics.source, p) for p in range(2)}
    await async_wait_for(
        lambda: first.assigned() | second.assigned() == both
        and not first.assigned() & second.assigned(),
        60, message="the two partitions split between the members",
    )
    # Whoever holds partition 0 now hands out its records in order: were "slow" or
    # "quick" handed out again, their handlers would start before the marker's.
    await produce_raw(kafka_bootstrap, topics.source, b"marker", key=b"k")
    await async_wait_for(
        lambda: b"marker" in seen and first.handled + second.handled == len(seen), 60,
        message="the marker handled, and every record handed out before it",
    )
    assert seen == [b"slow", b"quick", b"marker"]  # each once: nothing was redelivered


async def test_a_topic_made_again_with_more_partitions_is_consumed_on_every_one(
    kafka_bootstrap: str, make_runtime: Callable[..., Awaitable[DeliveryRuntime]]
) -> None:
    """What a broker that lost its data does to a topic that a client had auto-created with
    the broker's default count: it comes back with the configured count. Once the metadata
    is read again, the group covers every partition."""
    topics = Topics()
    seen: list[bytes] = []

    async def handle(record: Inbound) -> list[Outgoing]:
        seen.append(record.value or b"")
        return [Outgoing(topics.out, record.key, record.value)]

    runtime = await make_runtime(topics, handle, partitions=1)
    await async_wait_for(lambda: bool(runtime.assigned()), 30, message="first assignment")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topics.source])
        await ensure_topics(kafka_bootstrap, [TopicSpec(topics.source, 3)])
    finally:
        await admin.close()
    await runtime.refresh_metadata()
    await async_wait_for(
        lambda: runtime.assigned() == {TopicPartition(topics.source, p) for p in range(3)},
        20, message="all 3 partitions of the new topic assigned",
    )
    sent = [f"p{p}".encode() for p in range(3)]
    for p, value in enumerate(sent):
        await produce(kafka_bootstrap, topics.source, value, partition=p)
    await async_wait_for(lambda: sorted(seen) == sent, 30, message="a record on every partition")

    async def settled() -> bool:
        committed = [await _committed(kafka_bootstrap, topics, p) for p in range(3)]
        return committed == [1, 1, 1] and runtime.in_flight == 0

    await async_wait_for(settled, 30, message="every partition committed, nothing in flight")
    assert sorted(seen) == sent  # each handed out once
    assert runtime.handled == 3
