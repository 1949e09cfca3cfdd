"""The shared service life cycle with fakes: the start and stop order, retries while the
broker is away, the repair after lost topics, readiness, and serving until the loop ends."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from modelbus_delivery.retry import Backoff
from modelbus_delivery.service_lifecycle import OnLost, ServiceLifecycle, serve_until


class Journal:
    """What the parts were asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, call: str) -> None:
        self.calls.append(call)


class FakeConnection:
    """A writer (or view) whose ``start`` fails ``failures`` times first."""

    def __init__(self, name: str, journal: Journal, failures: int = 0) -> None:
        self.name, self.journal, self.failures = name, journal, failures

    async def start(self) -> None:
        self.journal(f"{self.name}.start")
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("no broker")

    async def stop(self) -> None:
        self.journal(f"{self.name}.stop")


class FakeView(FakeConnection):
    async def reread(self) -> None:
        self.journal("view.reread")


class FakeConsumer:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.running = False

    async def start(self) -> None:
        self.journal("consumer.start")
        self.running = True

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        self.journal(f"consumer.stop(drain={drain_timeout_s})")
        self.running = False

    async def refresh_metadata(self) -> None:
        self.journal("consumer.refresh_metadata")


class FakeGuard:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.on_lost: OnLost | None = None
        self.seen = False  # whether a check reached the broker lately
        self.asked: list[float] = []

    def start(self, on_lost: OnLost | None = None) -> None:
        self.journal("guard.start")
        self.on_lost = on_lost

    async def stop(self) -> None:
        self.journal("guard.stop")

    def broker_seen_within(self, seconds: float) -> bool:
        self.asked.append(seconds)
        return self.seen


class FakePublisher:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def close(self) -> None:
        self.journal("problems.close")


class Parts:
    """A consumer service's parts, all journaling into one list."""

    def __init__(self, *, topic_failures: int = 0, writer_failures: int = 0) -> None:
        self.journal = Journal()
        self.topic_failures = topic_failures
        self.writer = FakeConnection("writer", self.journal, writer_failures)
        self.view = FakeView("view", self.journal)
        self.consumer = FakeConsumer(self.journal)
        self.guard = FakeGuard(self.journal)
        self.problems = FakePublisher(self.journal)

    async def ensure_topics(self) -> None:
        self.journal("topics")
        if self.topic_failures:
            self.topic_failures -= 1
            raise KafkaConnectionError("no broker")

    def lifecycle(self, *, consuming: bool = True) -> ServiceLifecycle:
        if not consuming:  # discovery: topics, writer and guard only
            return ServiceLifecycle("discovery", self.ensure_topics, self.writer, self.guard,
                                    Backoff(0, 0))
        return ServiceLifecycle(
            "worker", self.ensure_topics, self.writer, self.guard, Backoff(0, 0),
            consumer=self.consumer, view=self.view, publishers=[self.problems],
        )


async def test_start_connects_every_part_in_order_then_guards() -> None:
    parts = Parts()
    await parts.lifecycle().start()
    assert parts.journal.calls == [
        "topics", "writer.start", "view.start", "consumer.start", "guard.start"
    ]


async def test_stop_is_the_reverse_with_the_consumer_drained_and_publishers_closed() -> None:
    parts = Parts()
    lifecycle = parts.lifecycle()
    await lifecycle.start()
    parts.journal.calls.clear()
    await lifecycle.stop(drain_timeout_s=2.5)
    assert parts.journal.calls == [
        "guard.stop", "consumer.stop(drain=2.5)", "view.stop", "problems.close", "writer.stop"
    ]


async def test_a_service_without_consumer_or_view_starts_and_stops_what_it_has() -> None:
    parts = Parts()
    lifecycle = parts.lifecycle(consuming=False)
    await lifecycle.start()
    await lifecycle.stop()
    assert parts.journal.calls == [
        "topics", "writer.start", "guard.start", "guard.stop", "writer.stop"
    ]


async def test_each_step_is_retried_until_the_broker_answers() -> None:
    parts = Parts(topic_failures=2, writer_failures=1)
    await parts.lifecycle().start()
    assert parts.journal.calls == [
        "topics", "topics", "topics", "writer.start", "writer.start", "view.start",
        "consumer.start", "guard.start",
    ]


async def test_a_failure_that_is_not_the_broker_s_stops_the_start() -> None:
    parts = Parts()

    async def broken() -> None:
        raise RuntimeError("a bug")

    lifecycle = ServiceLifecycle("catalog", broken, parts.writer, parts.guard, Backoff(0, 0))
    with pytest.raises(RuntimeError, match="a bug"):
        await lifecycle.start()
    assert parts.journal.calls == []


async def test_lost_topics_refresh_the_consumer_reread_the_view_then_the_service_repairs(
) -> None:
    parts = Parts()

    async def repair() -> None:
        parts.journal("service.repair")

    await parts.lifecycle().start(on_topics_lost=repair)
    parts.journal.calls.clear()
    assert parts.guard.on_lost is not None
    await parts.guard.on_lost()
    assert parts.journal.calls == ["consumer.refresh_metadata", "view.reread", "service.repair"]


async def test_kafka_is_ready_while_the_guard_sees_the_broker_and_the_loops_run() -> None:
    parts = Parts()
    lifecycle = parts.lifecycle()
    assert lifecycle.kafka_ready() is False  # nothing started
    await lifecycle.start()
    assert lifecycle.kafka_ready() is False  # the guard has not reached the broker yet
    parts.guard.seen = True
    assert lifecycle.kafka_ready() is True
    assert lifecycle.kafka_ready(loop_running=False) is False
    assert parts.guard.asked[-1] == 5.0  # KAFKA_SEEN_WITHIN_S
    await lifecycle.stop()
    assert lifecycle.kafka_ready() is False  # the consumer stopped


async def test_without_a_consumer_readiness_is_the_guard_and_the_service_loop() -> None:
    parts = Parts()
    lifecycle = parts.lifecycle(consuming=False)
    parts.guard.seen = True
    assert (lifecycle.kafka_ready(), lifecycle.kafka_ready(loop_running=False)) == (True, False)


class FakeService:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def start(self) -> None:
        self.journal("service.start")

    async def stop(self) -> None:
        self.journal("service.stop")


async def test_serve_until_starts_waits_for_the_loop_and_stops() -> None:
    journal = Journal()

    async def ended() -> None:
        journal("loop.ended")

    await serve_until(FakeService(journal), ended)
    assert journal.calls == ["service.start", "loop.ended", "service.stop"]


async def test_serve_until_stops_the_service_when_its_loop_fails() -> None:
    journal = Journal()

    async def failed() -> None:
        raise RuntimeError("fetch loop died")

    with pytest.raises(RuntimeError, match="fetch loop died"):
        await serve_until(FakeService(journal), failed)
    assert journal.calls == ["service.start", "service.stop"]
