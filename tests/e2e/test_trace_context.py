"""W3C trace context through the real broker and worker: echoed on answers, continued by spans.

The worker's spans go to the global tracer provider; this module gives it the SDK's
in-memory exporter (the session's worker took a proxy tracer, which follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.support.kafka import produce, read_topic

from modelbus.client import AsyncModelbusClient, ModelbusClient
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.errors import ModelFailed
from modelbus_contract.headers import header_dict
from modelbus_delivery.topics import assign_all

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
OK_INPUT = {"Molecule": ["abc"]}

Headers = dict[str, str]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


@contextlib.asynccontextmanager
async def results_from_now(
    stack: InferenceStack,
) -> AsyncIterator[Callable[[str], Awaitable[Headers]]]:
    """Reads the results topic from its current end: the headers of the answer to a cid."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        partitions = await assign_all(consumer, stack.settings.topics.results)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)

        async def answer(cid: str) -> Headers:
            async with asyncio.timeout(60):
                while True:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            headers = header_dict(record.headers)
                            if headers.get("correlation_id") == cid:
                                return headers

        yield answer
    finally:
        await consumer.stop()


def _spans_of(exporter: InMemorySpanExporter, cid: str) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The worker's consumer span of request ``cid`` and the spans under it."""
    spans = exporter.get_finished_spans()
    (consumer,) = [s for s in spans if (s.attributes or {}).get("messaging.message.id") == cid]
    children = [s for s in spans if s.parent is not None
                and s.parent.span_id == consumer.context.span_id]
    return consumer, children


async def test_traceparent_round_trip_through_the_worker(
    inference_stack: InferenceStack, client: AsyncModelbusClient,
    exporter: InMemorySpanExporter,
) -> None:
    cid = uuid.uuid4().hex
    async with results_from_now(inference_stack) as answer_to:
        got = await client.predict(TRICKY_MODEL, OK_INPUT, correlation_id=cid,
                                   traceparent=TRACEPARENT, tracestate=TRACESTATE)
        headers = await answer_to(cid)
    assert got.column("Predicted").to_pylist() == ["3"]
    assert (headers["status"], headers["traceparent"], headers["tracestate"]) == (
        "ok", TRACEPARENT, TRACESTATE
    )
    consumer, children = _spans_of(exporter, cid)
    topic = inference_stack.settings.topics.requests
    assert (consumer.name, consumer.kind) == (f"process {topic}", SpanKind.CONSUMER)
    assert consumer.parent is not None
    assert (f"{consumer.context.trace_id:032x}", f"{consumer.parent.span_id:016x}") == (
        TRACE_ID, PARENT_ID
    )
    attributes = consumer.attributes or {}
    assert (attributes["messaging.system"], attributes["messaging.destination.name"],
            attributes["messaging.kafka.consumer.group"], attributes["modelbus.model"]) == (
        "kafka", topic, f"{inference_stack.settings.topic_prefix}worker", TRICKY_MODEL
    )
    (predict,) = children
    assert (predict.name, predict.kind) == (f"predict {TRICKY_MODEL}", SpanKind.INTERNAL)
    assert (predict.attributes or {})["modelbus.request.rows"] == 1


async def test_the_client_sends_the_current_spans_context(
    client: AsyncModelbusClient, exporter: InMemorySpanExporter,
) -> None:
    cid = uuid.uuid4().hex
    tracer = TracerProvider().get_tracer("caller")  # the caller's own, unexported spans
    with tracer.start_as_current_span("caller") as span:
        await client.predict(TRICKY_MODEL, OK_INPUT, correlation_id=cid)
    consumer, _ = _spans_of(exporter, cid)
    assert consumer.parent is not None
    assert (consumer.context.trace_id, consumer.parent.span_id) == (
        span.get_span_context().trace_id, span.get_span_context().span_id
    )


async def test_the_blocking_client_sends_the_calling_threads_span(
    inference_stack: InferenceStack, exporter: InMemorySpanExporter,
) -> None:
    tracer = TracerProvider().get_tracer("caller")

    def predict_in_a_span() -> tuple[int, int]:
        with ModelbusClient(settings=inference_stack.settings) as mb, \
                tracer.start_as_current_span("caller") as span:
            mb.predict(TRICKY_MODEL, OK_INPUT, timeout=60)
            return span.get_span_context().trace_id, span.get_span_context().span_id

    trace_id, span_id = await asyncio.to_thread(predict_in_a_span)
    (consumer,) = [s for s in exporter.get_finished_spans()
                   if s.kind == SpanKind.CONSUMER and s.context.trace_id == trace_id]
    assert consumer.parent is not None and consumer.parent.span_id == span_id


async def test_an_error_result_and_the_dlq_copy_carry_the_traceparent(
    inference_stack: InferenceStack, client: AsyncModelbusClient,
    exporter: InMemorySpanExporter,
) -> None:
    failing = uuid.uuid4().hex
    async with results_from_now(inference_stack) as answer_to:
        with pytest.raises(ModelFailed, match="boom"):
            await client.predict(TRICKY_MODEL, {"Molecule": ["boom"]}, correlation_id=failing,
                                 traceparent=TRACEPARENT)
        headers = await answer_to(failing)
    assert (headers["error_code"], headers["traceparent"]) == ("model_failed", TRACEPARENT)
    assert "tracestate" not in headers
    consumer, _ = _spans_of(exporter, failing)
    assert consumer.status.status_code == StatusCode.ERROR
    assert (consumer.attributes or {})["error.type"] == "model_failed"

    settings = inference_stack.settings
    bad = uuid.uuid4().hex
    _, future = client._replies.expect(bad)
    try:
        await produce(settings.kafka_bootstrap_servers, settings.topics.requests, b"not arrow",
                      key=bad, headers=[("model", TRICKY_MODEL), ("correlation_id", bad),
                                        ("traceparent", TRACEPARENT),
                                        ("tracestate", TRACESTATE)])
        headers, _ = await asyncio.wait_for(future, 60)
    finally:
        client._replies.forget(bad)
    assert (headers["error_code"], headers["traceparent"], headers["tracestate"]) == (
        "bad_request", TRACEPARENT, TRACESTATE
    )
    dlq = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.dlq,
        until=lambda records: any(
            header_dict(r.headers).get("correlation_id") == bad for r in records
        ),
        timeout=60,
    )
    (copy,) = [header_dict(r.headers) for r in dlq
               if header_dict(r.headers).get("correlation_id") == bad]
    assert (copy["dlq_error_code"], copy["traceparent"], copy["tracestate"]) == (
        "bad_request", TRACEPARENT, TRACESTATE
    )


async def test_an_invalid_traceparent_is_answered_and_not_echoed(
    inference_stack: InferenceStack, client: AsyncModelbusClient,
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(ValueError, match="not a valid W3C traceparent"):
        await client.predict(TRICKY_MODEL, OK_INPUT, traceparent="00-nope")
    settings = inference_stack.settings
    cid = uuid.uuid4().hex
    invalid = f"00-{TRACE_ID}-{'0' * 16}-01"  # an all-zero parent id
    _, future = client._replies.expect(cid)
    try:
        await produce(
            settings.kafka_bootstrap_servers, settings.topics.requests,
            to_ipc_stream(pa.table(OK_INPUT)), key=cid,
            headers=[("model", TRICKY_MODEL), ("correlation_id", cid),
                     ("content-type", "application/vnd.apache.arrow.stream"),
                     ("traceparent", invalid), ("tracestate", TRACESTATE)],
        )
        headers, _ = await asyncio.wait_for(future, 60)
    finally:
        client._replies.forget(cid)
    assert headers["status"] == "ok"
    assert "traceparent" not in headers and "tracestate" not in headers
    consumer, _ = _spans_of(exporter, cid)
    assert consumer.parent is None  # the worker started a new trace
    assert f"{consumer.context.trace_id:032x}" != TRACE_ID
