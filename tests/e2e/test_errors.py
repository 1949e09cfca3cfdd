"""Every bad input is answered with its error code; none crashes or blocks the worker."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import read_topic
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_contract.errors import (
    BadRequest,
    ModelFailed,
    ModelNotFound,
    SchemaMismatch,
    TooLarge,
)
from modelbus_contract.headers import header_dict

from .conftest import InferenceStack

pytestmark = pytest.mark.integration
OK_INPUT = {"Molecule": ["abc"]}


async def test_unknown_model_version_and_alias(client: AsyncModelbusClient) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        await client.predict("nope", OK_INPUT)
    with pytest.raises(ModelNotFound, match="no version '99'"):
        await client.predict("test-tricky", OK_INPUT, version=99)
    with pytest.raises(ModelNotFound, match="no alias 'prod'"):
        await client.predict("test-tricky", OK_INPUT, version="@prod")


async def test_wrong_and_missing_columns_are_schema_mismatch(client: AsyncModelbusClient) -> None:
    with pytest.raises(SchemaMismatch) as info:
        await client.predict("test-tricky", {"smiles": ["C"]})
    assert "missing columns ['Molecule']" in info.value.message
    assert "unexpected columns ['smiles']" in info.value.message
    with pytest.raises(SchemaMismatch, match="'Molecule' is int64, expected string"):
        await client.predict("test-tricky", {"Molecule": [1]})


async def test_model_raising_is_model_failed_with_its_text(client: AsyncModelbusClient) -> None:
    with pytest.raises(ModelFailed, match="boom: the model refused this input"):
        await client.predict("test-tricky", {"Molecule": ["boom"]})
    # ...and the container still serves the next request.
    ok = await client.predict("test-tricky", OK_INPUT)
    assert ok.column("Predicted").to_pylist() == ["3"]


async def test_result_beyond_the_producer_limit_is_too_large(
    client: AsyncModelbusClient, inference_stack: InferenceStack
) -> None:
    size = inference_stack.settings.max_message_bytes * 2
    with pytest.raises(TooLarge, match="limit"):
        await client.predict("test-tricky", {"Molecule": [f"big:{size}"]})


async def test_body_that_is_not_arrow_is_bad_request_and_goes_to_the_dlq(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    settings = inference_stack.settings
    cid = uuid.uuid4().hex
    _, future = client._replies.expect(cid)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.requests, b"{\"Molecule\": \"CCO\"}", key=cid.encode(),
            headers=[("model", b"test-tricky"), ("correlation_id", cid.encode())],
        )
    finally:
        await producer.stop()
    headers, body = await asyncio.wait_for(future, 30)
    assert json.loads(body)["error_code"] == "bad_request"
    assert headers["status"] == "error"
    assert headers["error_code"] == "bad_request"
    assert "not an Arrow IPC stream" in headers["error_message"]
    dlq = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.dlq,
        until=lambda records: any(
            header_dict(r.headers).get("correlation_id") == cid for r in records
        ),
        timeout=30,
    )
    copy = next(r for r in dlq if header_dict(r.headers).get("correlation_id") == cid)
    assert copy.value == b"{\"Molecule\": \"CCO\"}"
    assert header_dict(copy.headers)["dlq_error_code"] == "bad_request"


async def test_request_without_model_header_is_bad_request(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    with pytest.raises(BadRequest, match="missing header 'model'"):
        await client.predict("", OK_INPUT)


async def test_container_killed_while_serving_is_restarted_and_answers(
    inference_stack: InferenceStack, client: AsyncModelbusClient, docker_client
) -> None:  # type: ignore[no-untyped-def]
    pool, worker = inference_stack.pool, inference_stack.worker
    key = f"test-tricky/{inference_stack.tricky.version}"
    victim = pool.running()[key]
    request = asyncio.create_task(
        client.predict("test-tricky", {"Molecule": ["sleep:2"]},
                       version=inference_stack.tricky.version, timeout=300)
    )
    await async_wait_for(
        lambda: worker.tracker.in_flight() > 0 and pool._warm[key].in_flight > 0,
        30, 0.01, "the request inside the container",
    )
    await asyncio.to_thread(docker_client.containers.get(victim).kill)
    result = await request
    assert result.column("Predicted").to_pylist() == ["7"]
    assert pool.running()[key] != victim
