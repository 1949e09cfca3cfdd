"""``CatalogView.sync``: a view that polls slowly catches up on demand, through the real
broker, and a worker catches up before it says a model is unknown.

The embedded broker answers a long fetch when its wait ends (or after 5 s), so a view told
to wait 10 s sees a new entry seconds late unless it is asked to catch up.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pyarrow as pa
import pytest
from tests.client.helpers import fetch_in_flight
from tests.support.kafka import produce, read_topic
from tests.support.settings import isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.wiring import assemble_worker
from modelbus_client.tables import from_ipc_stream, to_ipc_stream
from modelbus_contract.channels import TopicSpec
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.topics import ensure_topics

SLOW_POLL_MS = 10_000

pytestmark = pytest.mark.integration


def _entry(name: str, version: str) -> CatalogEntry:
    return CatalogEntry(
        name=name, version=version, status="ready",
        inputs=[Parameter(index=0, name="a", type="double", arrow_type="double")],
        outputs=[Parameter(index=0, name="y", type="double")],
    )


async def _mid_fetch(view: CatalogView) -> None:
    """Until the view's consumer has a (long) fetch sent and not answered: what is
    published now reaches it when that fetch ends, unless the view is asked to catch up."""
    await async_wait_for(lambda: fetch_in_flight(view._consumer), 30, interval=0.01,
                         message="the view's fetch in flight")


async def _catalog_topic(kafka_bootstrap: str, stem: str) -> str:
    topic = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", stem).topics.catalog
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, compacted=True)])
    return topic


async def test_sync_returns_once_every_entry_published_before_it_is_in_the_view(
    kafka_bootstrap: str,
) -> None:
    topic = await _catalog_topic(kafka_bootstrap, "sync")
    await produce(kafka_bootstrap, topic, _entry("old", "1").model_dump_json(), key="old/1")
    view = CatalogView(kafka_bootstrap, topic, SLOW_POLL_MS)
    await view.start(catch_up_timeout_s=30)
    try:
        assert set(view.entries) == {"old/1"}
        assert await view.sync(timeout_s=30)  # nothing new: the view is at the end already
        await _mid_fetch(view)
        published = [_entry("new", str(v)) for v in range(1, 6)]
        for e in published:
            await produce(kafka_bootstrap, topic, e.model_dump_json(), key=e.key)
        assert await view.sync(timeout_s=30)
        assert set(view.entries) == {"old/1", *(e.key for e in published)}
    finally:
        await view.stop()


async def test_concurrent_syncs_share_one_end_offsets_request_and_later_ones_ask_again(
    kafka_bootstrap: str,
) -> None:
    topic = await _catalog_topic(kafka_bootstrap, "sync-share")
    view = CatalogView(kafka_bootstrap, topic)
    await view.start(catch_up_timeout_s=30)
    consumer: Any = view._consumer
    asked: list[float] = []
    end_offsets = consumer.end_offsets

    async def counted(partitions: Any) -> Any:  # the real request, counted
        asked.append(time.monotonic())
        return await end_offsets(partitions)

    consumer.end_offsets = counted
    try:
        assert await asyncio.gather(*(view.sync(timeout_s=30) for _ in range(20))) == [True] * 20
        assert len(asked) == 1
        await produce(kafka_bootstrap, topic, _entry("m", "1").model_dump_json(), key="m/1")
        assert await view.sync(timeout_s=30)
        assert len(asked) == 2
        assert "m/1" in view.entries
    finally:
        await view.stop()


async def test_sync_of_a_stopped_view_is_false(kafka_bootstrap: str) -> None:
    topic = await _catalog_topic(kafka_bootstrap, "sync-stopped")
    view = CatalogView(kafka_bootstrap, topic)
    assert await view.sync(timeout_s=1) is False  # never started
    await view.start(catch_up_timeout_s=30)
    await view.stop()
    assert await view.sync(timeout_s=1) is False


class Doubling:
    """The worker's predictor port: y = 2a (no container: the catalog is under test)."""

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        return pa.table({"y": [2.0 * a for a in table.column("a").to_pylist()]})

    async def close(self) -> None:
        return None


async def test_a_worker_answers_a_model_published_after_its_view_last_read_the_catalog(
    kafka_bootstrap: str,
) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "catch-up").model_copy(
        update={"kafka_catalog_fetch_max_wait_ms": SLOW_POLL_MS}
    )
    topics = settings.topics
    worker = assemble_worker(settings, Doubling())
    await worker.start()
    try:
        await _mid_fetch(worker.catalog)
        known = _entry("fresh", "1")
        await produce(kafka_bootstrap, topics.catalog, known.model_dump_json(), key=known.key)
        body = to_ipc_stream(pa.table({"a": [1.5, 4.0]}))
        for cid, model in (("c-fresh", "fresh"), ("c-unknown", "never-published")):
            await produce(kafka_bootstrap, topics.requests, body, key=cid,
                          headers=[("model", model), ("correlation_id", cid)])
        records = await read_topic(
            kafka_bootstrap, topics.results, until=lambda rs: len(rs) >= 2, timeout=30
        )
    finally:
        await worker.stop()
    by_cid = {dict(r.headers)["correlation_id"].decode(): r for r in records}
    assert sorted(by_cid) == ["c-fresh", "c-unknown"]
    fresh, unknown = by_cid["c-fresh"], by_cid["c-unknown"]
    assert dict(fresh.headers)["status"] == b"ok"
    assert from_ipc_stream(fresh.value).column("y").to_pylist() == [3.0, 8.0]
    assert dict(unknown.headers)["status"] == b"error"
    assert json.loads(unknown.value)["error_code"] == "model_not_found"
