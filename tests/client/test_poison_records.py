"""Consumers outside the services survive poison records, through the real broker.

Poison: a header name that is not UTF-8 (aiokafka's consumer raises inside ``getmany``),
header values that are not UTF-8, and bodies that cannot be parsed, are too large, or cannot
be stored as Parquet. Each consumer reports and skips them, delivers the good records that
follow, and keeps running.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from structlog.testing import capture_logs
from tests.support.kafka import read_topic
from tests.support.settings import answered_on_results_topic, isolated_settings

from modelbus.client import AsyncModelbusClient
from modelbus_client.cli.results_batches import ERRORS_DIR, UNDECODABLE, UNREADABLE, UNWRITABLE
from modelbus_client.cli.results_writer import write_results
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.channels import TopicSpec
from modelbus_contract.errors import InternalError, TooLarge
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.poison import advance, expected_positions, getmany_skipping_poison
from modelbus_delivery.topics import assign_all, ensure_topics

from .helpers import POISON_NAME, Raw, poison, produce_batch, produce_each

pytestmark = pytest.mark.integration

NO_MLFLOW = "http://127.0.0.1:9"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> ModelbusSettings:
    """The session's broker, topics of the test's own; no MLflow needed."""
    return answered_on_results_topic(isolated_settings(kafka_bootstrap, NO_MLFLOW, "client"))


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def events(logs: list[dict[str, Any]], event: str, topic: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event and e.get("topic") == topic]


def entry(name: str, **fields: Any) -> CatalogEntry:
    return CatalogEntry(name=name, version="1", status="ready", **fields)


def entry_record(e: CatalogEntry, key: bytes | None = None) -> Raw:
    return Raw(e.model_dump_json().encode(), key if key is not None else e.key.encode())


# ---------------------------------------------------------------------------------------
# the helper itself


async def test_getmany_skipping_poison_delivers_every_readable_record(
    kafka_bootstrap: str, logs: list[dict[str, Any]]
) -> None:
    topic = f"poison-{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=2)])
    a = await produce_each(kafka_bootstrap, topic, [Raw(b"a0"), Raw(b"a1"), poison(), Raw(b"a3")])
    b = await produce_each(kafka_bootstrap, topic, [Raw(b"b0"), Raw(b"b1")], partition=1)
    # One record batch with a poison record inside: aiokafka parses a batch from its start,
    # so the two records after the poison one cannot be read either and are reported too.
    c = await produce_batch(
        kafka_bootstrap, topic, [Raw(b"a4"), poison(), Raw(b"lost-5"), Raw(b"lost-6")]
    )
    d = await produce_each(kafka_bootstrap, topic, [Raw(b"a8")])
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    reported: list[tuple[TopicPartition, int, str]] = []

    async def on_poison(tp: TopicPartition, offset: int, exc: BaseException) -> None:
        reported.append((tp, offset, type(exc).__name__))

    got: dict[TopicPartition, list[bytes]] = {tp0: [], tp1: []}
    try:
        tps = await assign_all(consumer, topic)
        await consumer.seek_to_beginning(*tps)
        expected = await expected_positions(consumer, tps)
        async with asyncio.timeout(60):
            while got[tp0][-1:] != [b"a8"] or got[tp1][-1:] != [b"b1"]:
                batch = await getmany_skipping_poison(
                    consumer, expected, on_poison, timeout_ms=200, max_records=3
                )
                advance(expected, batch)
                for tp, records in batch.items():
                    got[tp].extend(r.value for r in records)
        # nothing more, and nothing reported twice
        assert await getmany_skipping_poison(consumer, expected, on_poison, timeout_ms=300) == {}
    finally:
        await consumer.stop()

    assert got == {tp0: [b"a0", b"a1", b"a3", b"a4", b"a8"], tp1: [b"b0", b"b1"]}
    assert b == [0, 1]
    assert reported == [
        (tp0, a[2], "UnicodeDecodeError"),
        (tp0, c[1], "UnicodeDecodeError"),
        (tp0, c[2], "UnicodeDecodeError"),
        (tp0, c[3], "UnicodeDecodeError"),
    ]
    assert d == [c[3] + 1]
    logged = events(logs, "record_undecodable", topic)
    assert [(e["partition"], e["offset"]) for e in logged] == [(0, a[2]), (0, c[1]), (0, c[2]),
                                                               (0, c[3])]
    assert all("UnicodeDecodeError" in e["error"] for e in logged)


# ---------------------------------------------------------------------------------------
# catalog view, client catalog()/watch_catalog(), `modelbus catalog`


async def test_catalog_consumers_skip_poison_records(
    kafka_settings: ModelbusSettings, logs: list[dict[str, Any]]
) -> None:
    bootstrap, topic = kafka_settings.kafka_bootstrap_servers, kafka_settings.topics.catalog
    await ensure_topics(bootstrap, [TopicSpec(topic, compacted=True)])
    huge = entry("huge", problems=["x" * 100] * 50)
    await produce_each(bootstrap, topic, [
        entry_record(entry("a")),
        Raw(entry("x").model_dump_json().encode(), b"x/1", ((POISON_NAME, b"v"),)),
        Raw(b"{not json", b"n/1"),
        Raw(b"\xff\xfe\x00", b"u/1"),
        entry_record(huge),
        entry_record(entry("k"), key=b"\xffk/1"),
        Raw(entry("nokey").model_dump_json().encode(), None),
        entry_record(entry("c")),
        Raw(None, b"c/1"),  # tombstone: c removed
        entry_record(entry("b", tags={"t": "\u00e9"})),
    ])
    assert len(huge.model_dump_json()) > 4096

    view = CatalogView(connection_options(kafka_settings), topic, max_value_bytes=4096)
    await view.start(catch_up_timeout_s=30)
    try:
        assert sorted(view.entries) == ["a/1", "b/1"]
        assert view.skipped == 6
        changes = view.changes()
        await produce_each(bootstrap, topic, [poison(), entry_record(entry("d"))])
        assert await view.wait_until(lambda entries: "d/1" in entries, 30)
        first = await asyncio.wait_for(anext(changes), 5)
        assert (first.key, first.entry) == ("d/1", view.entries["d/1"])
        assert view.skipped == 7
    finally:
        await view.stop()
    assert [e["offset"] for e in events(logs, "record_undecodable", topic)] == [1, 10]
    unreadable = events(logs, "catalog_record_unreadable", topic)
    assert [e["offset"] for e in unreadable] == [2, 3, 4, 5, 6]
    assert "4096" in unreadable[2]["error"] and "not UTF-8" in unreadable[3]["error"]

    # the client's views read values up to 1 MiB: "huge" is an entry for them
    client = AsyncModelbusClient(settings=kafka_settings)
    assert [e.key for e in await client.catalog(timeout=30)] == ["a/1", "b/1", "d/1", "huge/1"]
    watched: list[str] = []
    watch = client.watch_catalog()
    try:
        async with asyncio.timeout(30):
            watched = [(await anext(watch)).key for _ in range(4)]
            await produce_each(bootstrap, topic, [poison(), entry_record(entry("e"))])
            watched.append((await anext(watch)).key)
    finally:
        await watch.aclose()
    assert watched == ["a/1", "b/1", "d/1", "huge/1", "e/1"]

    listing = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "modelbus", "catalog", "--json"],
        env={**os.environ, "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
             "MODELBUS_TOPIC_PREFIX": kafka_settings.topic_prefix},
        capture_output=True, text=True, timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    assert [json.loads(line)["name"] for line in listing.stdout.splitlines()] == [
        "a", "b", "d", "e", "huge"
    ]


# ---------------------------------------------------------------------------------------
# the client's results listener


def result(cid: str | bytes, value: bytes | None, status: bytes = b"ok",
           key: bytes | None = None, extra: tuple[tuple[str | bytes, bytes], ...] = ()) -> Raw:
    raw_cid = cid.encode() if isinstance(cid, str) else cid
    headers = (("status", status), ("model", b"m"), ("model_version", b"1"),
               ("correlation_id", raw_cid), *extra)
    return Raw(value, key if key is not None else raw_cid, headers)


async def test_results_listener_answers_around_poison_results(
    kafka_settings: ModelbusSettings, logs: list[dict[str, Any]]
) -> None:
    settings = kafka_settings.model_copy(update={"max_request_rows": 10})
    bootstrap, topics = settings.kafka_bootstrap_servers, settings.topics
    good = to_ipc_stream(pa.table({"Predicted": [1.5]}))
    cids = ["ok", "poisoned", "bad-status", "bad-cid", "garbage", "too-many-rows"]
    async with AsyncModelbusClient(settings=settings) as client:
        calls = {
            cid: asyncio.create_task(client.predict("m", {"x": [1]}, timeout=60,
                                                    correlation_id=cid))
            for cid in cids
        }
        await read_topic(bootstrap, topics.requests, until=lambda rs: len(rs) == len(cids))
        await produce_each(bootstrap, topics.results, [
            Raw(good, b"poisoned", (("correlation_id", b"poisoned"), (POISON_NAME, b"v"))),
            result("bad-status", good, status=b"\xffok"),
            result(b"\xff\xfe", good, key=b"bad-cid"),
            result("garbage", b"not arrow at all"),
            result("too-many-rows", to_ipc_stream(pa.table({"Predicted": [0.5] * 11}))),
            result("poisoned", good),
            result("ok", good),
        ])
        async with asyncio.timeout(30):
            outcomes = dict(zip(cids, await asyncio.gather(*calls.values(),
                                                           return_exceptions=True),
                                strict=True))
        # the listener is still reading
        late = asyncio.create_task(client.predict("m", {"x": [1]}, correlation_id="late"))
        await read_topic(bootstrap, topics.requests, until=lambda rs: len(rs) == len(cids) + 1)
        await produce_each(bootstrap, topics.results, [poison(), result("late", good)])
        assert (await asyncio.wait_for(late, 30)).to_pylist() == [{"Predicted": 1.5}]

    assert outcomes["ok"].to_pylist() == [{"Predicted": 1.5}]
    assert outcomes["poisoned"].to_pylist() == [{"Predicted": 1.5}]
    assert isinstance(outcomes["bad-status"], InternalError)
    assert "header 'status' is not UTF-8" in str(outcomes["bad-status"])
    assert isinstance(outcomes["bad-cid"], InternalError)
    assert "header 'correlation_id' is not UTF-8" in str(outcomes["bad-cid"])
    assert isinstance(outcomes["garbage"], InternalError)
    assert "cannot be read: invalid Arrow IPC stream" in str(outcomes["garbage"])
    assert isinstance(outcomes["too-many-rows"], TooLarge)
    assert "row count 11 exceeds the limit of 10" in str(outcomes["too-many-rows"])
    assert [e["offset"] for e in events(logs, "record_undecodable", topics.results)] == [0, 7]


# ---------------------------------------------------------------------------------------
# `modelbus results`


async def test_results_to_parquet_write_poison_to_errors(
    kafka_settings: ModelbusSettings, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    bootstrap, topic = kafka_settings.kafka_bootstrap_servers, kafka_settings.topics.results
    await ensure_topics(bootstrap, [TopicSpec(topic)])
    floats = to_ipc_stream(pa.table({"Predicted": [1.0, 2.0]}))
    interval = pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())
    offsets = await produce_each(bootstrap, topic, [
        result("ok-1", floats),
        poison(),
        Raw(floats, b"bad-model",
            (("status", b"ok"), ("model", b"m\xff"), ("correlation_id", b"bad-model"))),
        result("garbage", b"\x00\x01 not arrow"),
        result("interval", to_ipc_stream(pa.table({"Predicted": interval}))),
        result("duplicates", to_ipc_stream(pa.Table.from_arrays(
            [pa.array([1.0]), pa.array([2.0])], names=["Predicted", "Predicted"]))),
        result("clash", to_ipc_stream(pa.table({"model": ["mine"]}))),
        result("strings", to_ipc_stream(pa.table({"Predicted": ["a"]}))),
        result("failed", b'{"error_code": "model_failed"}', status=b"error",
               extra=(("error_code", b"model_failed"), ("error_message", b"boom"))),
        result("ok-2", floats),
    ])
    out = tmp_path / "results"
    group = f"{kafka_settings.topic_prefix}parquet"
    written = await write_results(kafka_settings, out, group, flush_interval_s=60, max_idle_s=3)
    assert written == 10

    ok = pq.read_table(list((out / "m" / "v1").glob("*.parquet")))
    assert ok.column_names == ["correlation_id", "model", "model_version", "row_index",
                               "Predicted"]
    assert ok.select(["correlation_id", "row_index", "Predicted"]).to_pylist() == [
        {"correlation_id": "ok-1", "row_index": 0, "Predicted": 1.0},
        {"correlation_id": "ok-1", "row_index": 1, "Predicted": 2.0},
        {"correlation_id": "ok-2", "row_index": 0, "Predicted": 1.0},
        {"correlation_id": "ok-2", "row_index": 1, "Predicted": 2.0},
    ]
    errors = pq.read_table(list((out / ERRORS_DIR).glob("*.parquet"))).sort_by("offset")
    rows = errors.select(["correlation_id", "error_code", "offset"]).to_pylist()
    assert rows == [
        {"correlation_id": "", "error_code": UNDECODABLE, "offset": offsets[1]},
        {"correlation_id": "bad-model", "error_code": UNREADABLE, "offset": offsets[2]},
        {"correlation_id": "garbage", "error_code": UNREADABLE, "offset": offsets[3]},
        {"correlation_id": "interval", "error_code": UNWRITABLE, "offset": offsets[4]},
        {"correlation_id": "duplicates", "error_code": UNWRITABLE, "offset": offsets[5]},
        {"correlation_id": "clash", "error_code": UNWRITABLE, "offset": offsets[6]},
        {"correlation_id": "strings", "error_code": UNWRITABLE, "offset": offsets[7]},
        {"correlation_id": "failed", "error_code": "model_failed", "offset": offsets[8]},
    ]
    messages = errors.column("error_message").to_pylist()
    assert "UnicodeDecodeError" in messages[0]
    assert "header 'model' is not UTF-8" in messages[1]
    assert "invalid Arrow IPC stream" in messages[2]
    assert "month_day_nano_interval" in messages[3]
    assert "duplicate column names ['Predicted']" in messages[4]
    assert "duplicate column names ['model'] (model: added in front" in messages[5]
    assert "schema differs from earlier results" in messages[6]
    assert messages[7] == "boom"
    assert set(errors.column("topic").to_pylist()) == {topic}
    assert [e["offset"] for e in events(logs, "record_undecodable", topic)] == [offsets[1]]

    # everything was committed: a second run finds nothing to write
    assert await write_results(kafka_settings, out, group, max_idle_s=1) == 0
