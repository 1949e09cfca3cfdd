"""A newer writer's messages through the real broker: an entry with fields and headers this
release does not know is served by the worker and listed by the client, and a result with
unknown headers, after a progress notice, is answered to the caller."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pytest
from tests.support.kafka import produce, read_topic
from tests.support.settings import isolated_settings

from modelbus.client import AsyncModelbusClient, Progress
from modelbus.wiring import assemble_worker
from modelbus_client.tables import from_ipc_stream, to_ipc_stream

from .test_catalog_view_sync import Doubling, _entry

pytestmark = pytest.mark.integration

NEWER_HEADERS = [("schema_version", b"1"), ("x-written-by", b"modelbus 9.0")]


def _newer_entry(name: str) -> str:
    document = json.loads(_entry(name, "1").model_dump_json())
    document["inputs"][0]["unit"] = "mol/l"
    document["serving"] = {"state": "warming_up", "worker": "w9", "gpu": "0"}
    document["added_in_a_later_release"] = {"nested": [1, 2]}
    return json.dumps(document)


async def test_a_worker_and_a_client_read_an_entry_of_a_newer_catalog(
    kafka_bootstrap: str,
) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "tolerant")
    topics = settings.topics
    await produce(kafka_bootstrap, topics.catalog, _newer_entry("newer"), key="newer/1",
                  headers=NEWER_HEADERS)
    worker = assemble_worker(settings, Doubling())
    await worker.start()
    try:
        body = to_ipc_stream(pa.table({"a": [1.5, 4.0]}))
        await produce(kafka_bootstrap, topics.requests, body, key="c1",
                      headers=[("model", "newer"), ("correlation_id", "c1"),
                               ("x-request-field", "from a newer client")])
        (result,) = await read_topic(kafka_bootstrap, topics.results,
                                     until=lambda rs: len(rs) >= 1, timeout=30)
        async with AsyncModelbusClient(settings=settings) as client:
            (listed,) = await client.catalog()
    finally:
        await worker.stop()
    assert dict(result.headers)["status"] == b"ok", dict(result.headers)
    assert from_ipc_stream(result.value).column("y").to_pylist() == [3.0, 8.0]
    assert (listed.key, [p.name for p in listed.inputs]) == ("newer/1", ["a"])
    assert listed.serving is not None and listed.serving.state == "warming_up"


async def test_a_client_takes_a_notice_then_a_result_with_unknown_headers(
    kafka_bootstrap: str,
) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "tolerant-results")
    topics = settings.topics
    notices: list[Progress] = []

    async def newer_worker() -> None:
        """Answers the one request as a newer worker might: a notice, then the result."""
        (request,) = await read_topic(kafka_bootstrap, topics.requests,
                                      until=lambda rs: len(rs) >= 1, timeout=30)
        asked = {k: v.decode() for k, v in request.headers}
        assert asked["notify_progress"] == "true"
        answer = {"correlation_id": asked["correlation_id"], "model": "m",
                  "model_version": "1", "x-newer": "yes"}
        await produce(kafka_bootstrap, asked["reply_to"], b"", key=request.key, headers=[
            *answer.items(), ("status", "preparing"), ("step", "images"),
            ("elapsed_ms", "1500"), ("notice_interval_ms", "5000"), ("eta_ms", "9000")])
        await produce(kafka_bootstrap, asked["reply_to"],
                      to_ipc_stream(pa.table({"y": [7.0]})), key=request.key,
                      headers=[*answer.items(), ("status", "ok"),
                               ("content-type", "application/vnd.apache.arrow.stream")])

    async with AsyncModelbusClient(settings=settings) as client:
        answering = asyncio.create_task(newer_worker())
        table = await client.predict("m", {"a": [1.0]}, timeout=30, on_progress=notices.append)
        await answering
    assert table.column("y").to_pylist() == [7.0]
    assert notices == [Progress("m", "1", "images", 1.5, 5.0)]
