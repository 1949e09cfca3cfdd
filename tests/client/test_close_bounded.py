"""Closing never raises and returns within a bound, even when the broker stops answering.

Each test runs a broker of its own, lets the client get requests in flight, freezes the
broker with SIGSTOP (its sockets stay open; nothing is answered) and closes. Issue 12: a
fetch cancelled by aiokafka's own close let a CancelledError out of ``close()``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.support.kafka import read_topic
from tests.support.settings import answered_on_results_topic, isolated_settings
from tests.support.waiting import async_wait_for, wait_for

from modelbus.client import AsyncModelbusClient, ClientClosed, ModelbusClient
from modelbus.stack import EmbeddedBroker
from modelbus_client.cli.results_writer import write_results
from modelbus_client.results_listener import TASK_STOP_TIMEOUT_S
from modelbus_client.sync_client import GRACE_S, LOOP_STOP_TIMEOUT_S
from modelbus_contract.channels import TopicSpec
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery import catalog_view
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.topics import ensure_topics

from .helpers import (
    Raw,
    dedicated_broker,
    fetch_backing_off,
    fetch_in_flight,
    freeze,
    produce_each,
    unread_request_bytes,
)

pytestmark = pytest.mark.integration

# Scheduling slack on a loaded two-core machine, on top of each documented bound.
SLACK_S = 2.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with dedicated_broker(tmp_path / "kafka") as broker:
        yield broker


def settings_for(broker: EmbeddedBroker) -> ModelbusSettings:
    return answered_on_results_topic(
        isolated_settings(broker.bootstrap_servers, "http://127.0.0.1:9", "close")
    )


async def frozen_mid_fetch(broker: EmbeddedBroker, consumer: Any) -> None:
    """SIGSTOP the broker, then wait until ``consumer`` has a fetch that will never return."""
    freeze(broker)
    await async_wait_for(lambda: fetch_in_flight(consumer), 10,
                         message="a fetch in flight to the frozen broker")


def client_loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "modelbus-client"}


async def test_async_client_close_is_bounded_when_the_broker_freezes(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_for(broker)
    client = AsyncModelbusClient(settings=settings)
    await client.start()
    # one request answered by nobody: the client waits for its result
    waiting = asyncio.create_task(client.predict("m", {"x": [1]}, timeout=600))
    await read_topic(broker.bootstrap_servers, settings.topics.requests,
                     until=lambda records: len(records) == 1)
    await frozen_mid_fetch(broker, client._replies._current._consumer)
    # and one whose send the frozen broker never acknowledges
    unread = unread_request_bytes(broker.port)
    sending = asyncio.create_task(client.predict("m", {"x": [2]}, timeout=600))
    await async_wait_for(lambda: unread_request_bytes(broker.port) > unread, 10,
                         message="the second request waiting in the frozen broker's socket")

    started = time.monotonic()
    await client.close()
    elapsed = time.monotonic() - started

    print(f"AsyncModelbusClient.close() with a frozen broker: {elapsed:.2f}s")
    assert client.close_bound_s == TASK_STOP_TIMEOUT_S + CLOSE_TIMEOUT_S + 1.0 == 7.0
    assert elapsed < client.close_bound_s + SLACK_S
    for call in (waiting, sending):
        await asyncio.wait_for(asyncio.wait({call}), 1.0)
        assert isinstance(call.exception(), ClientClosed)
    with pytest.raises(ClientClosed):
        await client.predict("m", {"x": [3]})
    await client.close()  # a second close is harmless


async def test_async_client_close_lets_the_callers_cancellation_through(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_for(broker)
    client = AsyncModelbusClient(settings=settings)
    await client.start()
    waiting = asyncio.create_task(client.predict("m", {"x": [1]}, timeout=600))
    await read_topic(broker.bootstrap_servers, settings.topics.requests,
                     until=lambda records: len(records) == 1)
    await frozen_mid_fetch(broker, client._replies._current._consumer)
    # a send the frozen broker never acknowledges: closing the producer waits for it
    unread = unread_request_bytes(broker.port)
    sending = asyncio.create_task(client.predict("m", {"x": [2]}, timeout=600))
    await async_wait_for(lambda: unread_request_bytes(broker.port) > unread, 10,
                         message="the request waiting in the frozen broker's socket")
    # wait_for cancels the close it times out; had close swallowed that cancellation,
    # wait_for would return instead of raising TimeoutError
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.close(), 0.5)
    for call in (waiting, sending):
        await asyncio.wait_for(asyncio.wait({call}), 1.0)
        assert isinstance(call.exception(), ClientClosed)
    started = time.monotonic()
    await client.close()  # what the first one left behind is abandoned, quietly
    assert time.monotonic() - started < client.close_bound_s + SLACK_S


def test_sync_client_close_is_bounded_and_stops_its_thread(broker: EmbeddedBroker) -> None:
    settings = settings_for(broker)
    before = client_loop_threads()
    client = ModelbusClient(settings=settings)
    outcomes: dict[str, BaseException | object] = {}

    def call(name: str, value: int) -> threading.Thread:
        def predict() -> None:
            try:
                outcomes[name] = client.predict("m", {"x": [value]}, timeout=600)
            except BaseException as exc:
                outcomes[name] = exc

        caller = threading.Thread(target=predict, name=f"predict-{name}")
        caller.start()
        return caller

    callers = [call("waiting", 1)]
    asyncio.run(read_topic(broker.bootstrap_servers, settings.topics.requests,
                           until=lambda records: len(records) == 1))
    freeze(broker)  # the client's loop runs on its own thread: this one may block
    consumer = client._client._replies._current._consumer
    wait_for(lambda: fetch_in_flight(consumer), 10, message="a fetch in flight")
    unread = unread_request_bytes(broker.port)
    callers.append(call("sending", 2))
    wait_for(lambda: unread_request_bytes(broker.port) > unread, 10,
             message="the second request waiting in the frozen broker's socket")

    started = time.monotonic()
    client.close()
    elapsed = time.monotonic() - started

    print(f"ModelbusClient.close() with a frozen broker: {elapsed:.2f}s")
    assert client.close_bound_s == 7.0 + GRACE_S + 2 * LOOP_STOP_TIMEOUT_S
    assert elapsed < client.close_bound_s + SLACK_S
    for caller in callers:
        caller.join(5.0)
        assert not caller.is_alive()
    assert {name: type(outcome) for name, outcome in outcomes.items()} == {
        "waiting": ClientClosed, "sending": ClientClosed,
    }
    assert client_loop_threads() == before
    with pytest.raises(ClientClosed):
        client.predict("m", {"x": [3]})
    client.close()


async def test_catalog_view_stop_is_bounded_when_the_broker_freezes(
    broker: EmbeddedBroker,
) -> None:
    topic = "close.models.catalog"
    await ensure_topics(broker.bootstrap_servers, [TopicSpec(topic, compacted=True)])
    view = CatalogView(broker.bootstrap_servers, topic)
    await view.start(catch_up_timeout_s=30)
    changes = view.changes()
    await frozen_mid_fetch(broker, view._consumer)

    started = time.monotonic()
    await view.stop()
    elapsed = time.monotonic() - started

    print(f"CatalogView.stop() with a frozen broker: {elapsed:.2f}s")
    assert elapsed < catalog_view.TASK_STOP_TIMEOUT_S + CLOSE_TIMEOUT_S + 1.0 + SLACK_S
    with pytest.raises(StopAsyncIteration):  # iterators of changes() end with the view
        await asyncio.wait_for(anext(changes), 1.0)


async def test_closing_after_the_broker_went_away_never_raises(broker: EmbeddedBroker) -> None:
    settings = settings_for(broker)
    client = AsyncModelbusClient(settings=settings)
    await client.start()
    await ensure_topics(broker.bootstrap_servers, [TopicSpec(settings.topics.catalog)])
    view = CatalogView(broker.bootstrap_servers, settings.topics.catalog)
    await view.start(catch_up_timeout_s=30)
    waiting = asyncio.create_task(client.predict("m", {"x": [1]}, timeout=600))
    await read_topic(broker.bootstrap_servers, settings.topics.requests,
                     until=lambda records: len(records) == 1)
    broker.stop()
    consumers = [client._replies._current._consumer, view._consumer]
    # aiokafka's own stop() raises CancelledError out of a fetch sleeping its retry backoff
    await async_wait_for(lambda: all(fetch_backing_off(c) for c in consumers), 10,
                         message="both fetches failed and backing off")

    started = time.monotonic()
    await client.close()
    await view.stop()
    elapsed = time.monotonic() - started

    print(f"close() and stop() after the broker went away: {elapsed:.2f}s")
    assert elapsed < client.close_bound_s + SLACK_S
    await asyncio.wait_for(asyncio.wait({waiting}), 1.0)
    assert isinstance(waiting.exception(), ClientClosed)


def test_sync_client_close_after_the_broker_went_away_never_raises(
    broker: EmbeddedBroker,
) -> None:
    before = client_loop_threads()
    settings = settings_for(broker)
    calls = ThreadPoolExecutor(1)
    try:
        with ModelbusClient(settings=settings) as client:
            # A request waits, so that the answer reader fetches (an idle one pauses).
            waiting = calls.submit(client.predict, "m", {"x": [1]}, timeout=600)
            asyncio.run(read_topic(broker.bootstrap_servers, settings.topics.requests,
                                   until=lambda records: len(records) == 1))
            broker.stop()
            consumer = client._client._replies._current._consumer
            wait_for(lambda: fetch_backing_off(consumer), 10, message="the fetch backing off")
            started = time.monotonic()
        elapsed = time.monotonic() - started
        assert isinstance(waiting.exception(timeout=5), ClientClosed)
    finally:
        calls.shutdown()
    print(f"ModelbusClient.__exit__ after the broker went away: {elapsed:.2f}s")
    assert elapsed < client.close_bound_s + SLACK_S
    assert client_loop_threads() == before


async def test_results_writer_stops_within_a_bound_when_the_broker_freezes(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = settings_for(broker)
    out = tmp_path / "results"
    writer = asyncio.create_task(
        write_results(settings, out, "close-results", flush_interval_s=0.2)
    )
    await produce_each(broker.bootstrap_servers, settings.topics.results, [
        Raw(b'{"error_code": "model_failed"}', b"c1",
            (("status", b"error"), ("correlation_id", b"c1"), ("error_code", b"model_failed"))),
    ])
    await async_wait_for(lambda: list(out.glob("_errors/*.parquet")), 60,
                         message="the first result written")
    unread = unread_request_bytes(broker.port)
    freeze(broker)
    await async_wait_for(lambda: unread_request_bytes(broker.port) > unread, 10,
                         message="a request (fetch, heartbeat) waiting in the frozen broker")

    started = time.monotonic()
    writer.cancel()
    await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT_S + SLACK_S)
    elapsed = time.monotonic() - started

    print(f"write_results cancelled with a frozen broker: {elapsed:.2f}s")
    assert writer.cancelled()  # the caller's cancellation, and nothing else, comes out
    assert elapsed < CLOSE_TIMEOUT_S + SLACK_S
