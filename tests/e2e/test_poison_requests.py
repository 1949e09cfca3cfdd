"""Requests built to break a worker, one per row of the poison table, through the real broker.

Each is answered (or, where no answer can be addressed, quarantined to the DLQ with the
reason), and a well-formed request right after it is answered by the same warm container.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.kafka import read_topic
from tests.support.raw_records import produce_raw
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.arrow_bounds import cast_bytes, inspect_stream
from modelbus_contract.errors import SchemaMismatch
from modelbus_contract.headers import header_dict

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration
GOOD = to_ipc_stream(pa.table({"Molecule": ["abc"]}))


def _cid() -> str:
    return f"poison-{uuid.uuid4().hex}"


async def _answer(
    stack: InferenceStack, match: Callable[[dict[str, str], ConsumerRecord], bool],
    topic: str | None = None,
) -> tuple[dict[str, str], ConsumerRecord]:
    records = await read_topic(
        stack.settings.kafka_bootstrap_servers, topic or stack.settings.topics.results,
        until=lambda rs: any(match(header_dict(r.headers), r) for r in rs), timeout=60,
    )
    found = [r for r in records if match(header_dict(r.headers), r)]
    assert len(found) == 1, f"expected exactly one answer, got {len(found)}"
    return header_dict(found[0].headers), found[0]


async def _answer_to(stack: InferenceStack, cid: str) -> dict[str, str]:
    headers, _ = await _answer(stack, lambda h, _r: h.get("correlation_id") == cid)
    return headers


async def _dlq_at(stack: InferenceStack, offset: int) -> dict[str, str]:
    requests = stack.settings.topics.requests
    headers, _ = await _answer(
        stack,
        lambda h, _r: h.get("dlq_source") == requests and h.get("dlq_partition") == "0"
        and h.get("dlq_offset") == str(offset),
        stack.settings.topics.dlq,
    )
    return headers


async def _send(
    stack: InferenceStack, value: bytes | None, headers: Sequence[tuple[str, bytes]],
    key: bytes | None = None,
) -> int:
    meta = await produce_raw(  # to partition 0, where _dlq_at looks
        stack.settings.kafka_bootstrap_servers, stack.settings.topics.requests, value,
        key=key, headers=headers,
    )
    return int(meta.offset)


async def _still_serving(stack: InferenceStack, client: AsyncModelbusClient) -> None:
    before = stack.pool.running()[f"{TRICKY_MODEL}/{stack.tricky.version}"]
    table = await client.predict(
        TRICKY_MODEL, {"Molecule": ["abcd"]}, version=stack.tricky.version, timeout=60
    )
    assert table.column("Predicted").to_pylist() == ["4"]
    assert stack.pool.running()[f"{TRICKY_MODEL}/{stack.tricky.version}"] == before


async def test_header_name_that_is_not_utf8_is_quarantined_and_the_worker_goes_on(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    s = inference_stack.settings
    meta = await produce_raw(
        s.kafka_bootstrap_servers, s.topics.requests, GOOD,
        headers=[(b"\xff\xfemodel", TRICKY_MODEL.encode()), ("correlation_id", b"unreadable")],
    )
    note = await _dlq_at(inference_stack, meta.offset)
    assert note["dlq_error_code"] == "bad_request"
    assert "UnicodeDecodeError" in note["dlq_error_message"]
    await _still_serving(inference_stack, client)


async def test_a_300_kb_binary_key_without_correlation_id_is_answered_under_a_new_id(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    offset = await _send(
        inference_stack, GOOD, [("model", TRICKY_MODEL.encode())], key=b"\xff" * 300_000
    )
    copy = await _dlq_at(inference_stack, offset)
    assert copy["dlq_error_code"] == "bad_request"
    assert "record key is not UTF-8" in copy["dlq_error_message"]
    generated = copy["dlq_error_message"].rsplit(" ", 1)[-1]
    headers, record = await _answer(
        inference_stack, lambda h, _r: h.get("correlation_id") == generated
    )
    assert headers["error_code"] == "bad_request"
    assert record.key == generated.encode()  # the 300 kB key is not echoed
    await _still_serving(inference_stack, client)


async def test_declared_rows_beyond_the_bound_are_too_large_before_anything_is_decoded(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    nulls = pa.table({"Molecule": pa.nulls(67_108_864)})
    body = to_ipc_stream(nulls)
    assert len(body) < 1000
    cid = _cid()
    await _send(inference_stack, body, [("model", TRICKY_MODEL.encode()),
                                        ("correlation_id", cid.encode())])
    headers = await _answer_to(inference_stack, cid)
    assert headers["error_code"] == "too_large"
    assert "67,108,864 rows" in headers["error_message"]
    await _still_serving(inference_stack, client)


async def test_a_compressed_body_that_inflates_past_the_bound_is_too_large(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    sink = pa.BufferOutputStream()
    table = pa.table({"Molecule": ["a" * (96 * 1024 * 1024)]})
    with pa.ipc.new_stream(sink, table.schema,
                           options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    del table
    assert len(body) < 64 * 1024
    cid = _cid()
    await _send(inference_stack, body, [("model", TRICKY_MODEL.encode()),
                                        ("correlation_id", cid.encode())])
    headers = await _answer_to(inference_stack, cid)
    assert headers["error_code"] == "too_large"
    decoded = inspect_stream(body).decoded_bytes
    assert decoded == 96 * 1024 * 1024 + 8  # the string's bytes and its two offsets
    needed = decoded + cast_bytes(1, [pa.string()])
    assert headers["error_message"] == (
        f"the request would take {needed:,} bytes once decoded and cast to the model's input "
        "types; the limit is 67,108,864"
    )
    await _still_serving(inference_stack, client)


async def test_reply_to_only_names_the_results_topic_or_an_allowed_reply_topic(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    s = inference_stack.settings
    new_topic = f"made-up-{uuid.uuid4().hex[:8]}"
    refused = [s.topics.catalog, s.topics.discovered, s.topics.requests, s.topics.dlq, ".",
               new_topic, f"{s.topic_prefix}replies.bad name"]
    sent = {}
    for reply_to in refused:
        cid = _cid()
        sent[cid] = reply_to
        await _send(inference_stack, GOOD, [("model", TRICKY_MODEL.encode()),
                                            ("correlation_id", cid.encode()),
                                            ("reply_to", reply_to.encode())])
    for cid, reply_to in sent.items():
        headers = await _answer_to(inference_stack, cid)  # on the default results topic
        assert headers["error_code"] == "bad_request", reply_to
        assert repr(reply_to) in headers["error_message"]
    catalog = await read_topic(s.kafka_bootstrap_servers, s.topics.catalog)
    assert not [r for r in catalog if header_dict(r.headers).get("correlation_id") in sent]
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:
        assert new_topic not in await admin.list_topics()
    finally:
        await admin.close()
    allowed, cid = f"{s.topic_prefix}replies.mine", _cid()
    await _send(inference_stack, GOOD, [("model", TRICKY_MODEL.encode()),
                                        ("correlation_id", cid.encode()),
                                        ("reply_to", allowed.encode())])
    headers, _ = await _answer(inference_stack, lambda h, _r: h.get("correlation_id") == cid,
                               allowed)
    assert headers["status"] == "ok"


async def test_an_int64_beyond_double_precision_and_repeated_columns_are_schema_mismatch(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    iris = inference_stack.demo[1]
    row = {c: [1.0] for c in iris.sample.columns}
    first = iris.sample.columns[0]
    exact = pa.table({**row, first: pa.array([2**53 + 1], pa.int64())})
    with pytest.raises(SchemaMismatch, match=rf"'{first}' cannot be cast to double"):
        await client.predict(iris.name, exact, version=iris.version)
    names = [first, *iris.sample.columns]
    twice = pa.Table.from_arrays([pa.array([1.0])] * len(names), names=names)
    with pytest.raises(SchemaMismatch, match=rf"columns named more than once: \['{first}'\]"):
        await client.predict(iris.name, twice, version=iris.version)


def _strings_with_offsets_past_their_data() -> bytes:
    offsets = struct.pack("<3i", 0, 2**30, 8)
    column = pa.StringArray.from_buffers(2, pa.py_buffer(offsets), pa.py_buffer(b"x" * 8))
    batch = pa.RecordBatch.from_arrays([column], names=["Molecule"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


async def test_string_offsets_past_their_data_are_bad_request_and_the_container_untouched(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    cid = _cid()
    await _send(inference_stack, _strings_with_offsets_past_their_data(),
                [("model", TRICKY_MODEL.encode()), ("correlation_id", cid.encode())])
    headers = await _answer_to(inference_stack, cid)
    assert headers["error_code"] == "bad_request"
    assert "offset" in headers["error_message"].lower()
    await _still_serving(inference_stack, client)


async def test_a_record_with_neither_key_nor_value_is_answered_and_committed(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    s = inference_stack.settings
    cid = _cid()
    meta = await produce_raw(s.kafka_bootstrap_servers, s.topics.requests, None,
                             headers=[("model", TRICKY_MODEL.encode()),
                                      ("correlation_id", cid.encode())])
    offset = meta.offset
    headers = await _answer_to(inference_stack, cid)
    assert headers["error_code"] == "bad_request"
    assert "empty body" in headers["error_message"]
    copy = await _dlq_at(inference_stack, offset)
    assert copy["correlation_id"] == cid
    await _still_serving(inference_stack, client)
    tp = TopicPartition(s.topics.requests, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers,
                                group_id=f"{s.topic_prefix}worker", enable_auto_commit=False)
    await consumer.start()
    try:
        async def committed_past() -> bool:
            position = await consumer.committed(tp)
            return position is not None and position > offset

        await async_wait_for(committed_past, 30, message="worker commit past the empty record")
    finally:
        await consumer.stop()


@pytest.mark.parametrize("raw", ["inf", "nan", "-5", "1e309"])
async def test_timeout_ms_must_be_a_positive_finite_number(
    inference_stack: InferenceStack, raw: str
) -> None:
    cid = _cid()
    await _send(inference_stack, GOOD, [("model", TRICKY_MODEL.encode()),
                                        ("correlation_id", cid.encode()),
                                        ("timeout_ms", raw.encode())])
    headers = await _answer_to(inference_stack, cid)
    assert headers["error_code"] == "bad_request"
    assert "timeout_ms" in headers["error_message"]
