"""Trace headers on the worker's answers, and its spans, with the SDK's in-memory exporter.

The handler and predictor are wrapped as the worker service wraps them; a fake predictor
stands in for the container pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pyarrow as pa
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelbus_client.tables import to_ipc_stream
from modelbus_contract.errors import BadRequest
from modelbus_delivery.records import Inbound
from modelbus_delivery.runtime import Handler
from modelbus_worker import tracing
from modelbus_worker.answer import Answer
from modelbus_worker.answering import Answering
from modelbus_worker.batching import BatchingPredictor, BatchSettings
from modelbus_worker.handler import RequestHandler
from modelbus_worker.quarantine import WorkerQuarantine
from modelbus_worker.request import Envelope

from .test_worker_handler import ENTRY, LIMITS, POLICY, TOPICS, LinearPredictor

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
GROUP = "modelbus.worker"
GOOD = to_ipc_stream(pa.table({"a": [1.0, 2.0], "b": [1.0, 1.0]}))
FAILING = to_ipc_stream(pa.table({"a": [-1.0], "b": [1.0]}))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _traced(exporter: InMemorySpanExporter, predictor: object) -> Handler:
    provider = _provider(exporter)
    handler = RequestHandler(
        {ENTRY.key: ENTRY}, tracing.traced_predictor(predictor, provider),  # type: ignore[arg-type]
        LIMITS,
    )
    return Answering(tracing.traced_handler(handler, GROUP, provider), POLICY, TOPICS.dlq)


def _record(value: bytes, offset: int = 41, **headers: str) -> Inbound:
    encoded = tuple((k, v.encode()) for k, v in {"model": "lin", **headers}.items())
    return Inbound(TOPICS.requests, 3, offset, b"lin", value, encoded)


def _spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


async def test_an_answer_carries_the_trace_and_the_spans_continue_it(
    exporter: InMemorySpanExporter,
) -> None:
    handle = _traced(exporter, LinearPredictor())
    (answer,) = await handle(_record(GOOD, correlation_id="c1", traceparent=TRACEPARENT,
                                     tracestate="rojo=00f067aa0ba902b7"))
    assert answer.headers["status"] == "ok"
    assert (answer.headers["traceparent"], answer.headers["tracestate"]) == (
        TRACEPARENT, "rojo=00f067aa0ba902b7"
    )
    spans = _spans(exporter)
    assert sorted(spans) == [f"predict {ENTRY.name}", f"process {TOPICS.requests}"]
    consumer, predict = spans[f"process {TOPICS.requests}"], spans[f"predict {ENTRY.name}"]
    assert consumer.kind == SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.is_remote
    assert (f"{consumer.context.trace_id:032x}", f"{consumer.parent.span_id:016x}") == (
        TRACE_ID, PARENT_ID
    )
    assert consumer.context.trace_state.to_header() == "rojo=00f067aa0ba902b7"
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": TOPICS.requests,
        "messaging.destination.partition.id": "3",
        "messaging.consumer.group.name": GROUP,
        "messaging.kafka.consumer.group": GROUP,
        "messaging.kafka.offset": 41,
        "messaging.kafka.message.key": "lin",
        "messaging.message.body.size": len(GOOD),
        "messaging.message.id": "c1",
        "modelbus.model": "lin",
        "modelbus.model_version": "3",
    }
    assert consumer.status.status_code == StatusCode.UNSET
    assert predict.kind == SpanKind.INTERNAL
    assert predict.parent is not None and predict.parent.span_id == consumer.context.span_id
    assert predict.context.trace_id == consumer.context.trace_id
    assert dict(predict.attributes or {}) == {
        "modelbus.model": "lin", "modelbus.model_version": "3", "modelbus.request.rows": 2,
        "modelbus.batch.requests": 1, "modelbus.batch.rows": 2,
    }
    assert predict.status.status_code == StatusCode.UNSET


async def test_a_failed_request_has_error_spans_and_its_answer_the_trace(
    exporter: InMemorySpanExporter,
) -> None:
    handle = _traced(exporter, LinearPredictor())
    (answer,) = await handle(_record(FAILING, traceparent=TRACEPARENT))
    assert (answer.headers["error_code"], answer.headers["traceparent"]) == (
        "model_failed", TRACEPARENT
    )
    spans = _spans(exporter)
    consumer, predict = spans[f"process {TOPICS.requests}"], spans[f"predict {ENTRY.name}"]
    assert (consumer.status.status_code, consumer.status.description) == (
        StatusCode.ERROR, "ValueError: negative a"
    )
    assert (consumer.attributes or {})["error.type"] == "model_failed"
    assert predict.status.status_code == StatusCode.ERROR
    assert (predict.attributes or {})["error.type"] == "model_failed"
    assert [event.name for event in predict.events] == ["exception"]


async def test_a_bad_request_answer_and_dlq_copy_carry_the_trace(
    exporter: InMemorySpanExporter,
) -> None:
    handle = _traced(exporter, LinearPredictor())
    answer, copy = await handle(_record(b"not arrow", traceparent=TRACEPARENT,
                                        tracestate="rojo=1"))
    assert (answer.topic, answer.headers["error_code"]) == (TOPICS.results, "bad_request")
    assert (answer.headers["traceparent"], answer.headers["tracestate"]) == (
        TRACEPARENT, "rojo=1"
    )
    assert copy.topic == TOPICS.dlq
    assert (copy.headers["traceparent"], copy.headers["tracestate"]) == (TRACEPARENT, "rojo=1")
    (consumer,) = exporter.get_finished_spans()  # the model was never called
    assert consumer.status.status_code == StatusCode.ERROR
    assert (consumer.attributes or {})["error.type"] == "bad_request"


async def test_an_invalid_traceparent_is_answered_and_not_echoed(
    exporter: InMemorySpanExporter,
) -> None:
    handle = _traced(exporter, LinearPredictor())
    bad = f"00-{'0' * 32}-{PARENT_ID}-01"
    (answer,) = await handle(_record(GOOD, traceparent=bad, tracestate="rojo=1"))
    assert answer.headers["status"] == "ok"
    assert "traceparent" not in answer.headers and "tracestate" not in answer.headers
    consumer = _spans(exporter)[f"process {TOPICS.requests}"]
    assert consumer.parent is None  # a new trace
    assert f"{consumer.context.trace_id:032x}" != TRACE_ID


async def test_batched_requests_each_have_their_predict_span_naming_the_shared_call(
    exporter: InMemorySpanExporter,
) -> None:
    model = LinearPredictor()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.05), spans=tracing.BATCH_SPANS)
    handle = _traced(exporter, batching)
    parents = [f"00-{TRACE_ID[:-1]}{n}-{PARENT_ID}-01" for n in range(3)]
    answers = await asyncio.gather(*(
        handle(_record(GOOD, offset=n, traceparent=parent)) for n, parent in enumerate(parents)
    ))
    assert [out.headers["traceparent"] for (out,) in answers] == parents
    assert [rows for _, _, rows, _ in model.calls] == [6]  # one shared call
    spans = exporter.get_finished_spans()
    consumers = {s.context.span_id: s for s in spans if s.kind == SpanKind.CONSUMER}
    predicts = [s for s in spans if s.kind == SpanKind.INTERNAL]
    assert len(consumers) == 3 and len(predicts) == 3
    for predict in predicts:
        assert predict.parent is not None
        consumer = consumers[predict.parent.span_id]
        assert predict.context.trace_id == consumer.context.trace_id
        assert dict(predict.attributes or {}) == {
            "modelbus.model": "lin", "modelbus.model_version": "3",
            "modelbus.request.rows": 2, "modelbus.batch.requests": 3, "modelbus.batch.rows": 6,
        }
    assert sorted(f"{c.context.trace_id:032x}" for c in consumers.values()) == [
        p.split("-")[1] for p in parents
    ]


def test_the_quarantine_answer_carries_the_trace() -> None:
    quarantine = WorkerQuarantine(TOPICS, POLICY, 1 << 20)
    answer, copy = quarantine.poisoned(_record(b"body", traceparent=TRACEPARENT), "crashed")
    assert answer.headers["traceparent"] == copy.headers["traceparent"] == TRACEPARENT


async def test_without_opentelemetry_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "trace", None)
    model = LinearPredictor()
    handler = RequestHandler({ENTRY.key: ENTRY}, model, LIMITS)
    assert tracing.traced_handler(handler, GROUP) is handler
    assert tracing.traced_predictor(model) is model
    assert tracing.current_span() is None
    assert not tracing.enabled()
    batching = BatchingPredictor(model, BatchSettings(window_s=0.01), spans=tracing.BATCH_SPANS)
    tables = await asyncio.gather(*(
        batching.predict("lin", "3", pa.table({"a": [1.0], "b": [1.0]})) for _ in range(2)
    ))
    assert [t.num_rows for t in tables] == [1, 1]
    assert batching.batches == 1
    (answer,) = await Answering(handler, POLICY, TOPICS.dlq)(_record(GOOD, traceparent=TRACEPARENT))
    assert answer.headers["traceparent"] == TRACEPARENT  # echoing needs no OpenTelemetry


async def test_without_a_tracer_provider_a_request_goes_straight_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in a worker whose operator set up no tracing (OpenTelemetry itself is importable:
    # it comes with MLflow). An earlier test of the session may have set the global one.
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    seen: list[bool] = []

    class Model(LinearPredictor):
        async def predict(
            self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
        ) -> pa.Table:
            seen.append(trace.get_current_span().get_span_context().is_valid)
            return await super().predict(name, version, table, timeout_s)

    handler = RequestHandler({ENTRY.key: ENTRY}, tracing.traced_predictor(Model()), LIMITS)
    (answer,) = await Answering(tracing.traced_handler(handler, GROUP), POLICY, TOPICS.dlq)(
        _record(GOOD, traceparent=TRACEPARENT)
    )
    assert answer.headers["status"] == "ok"
    assert answer.headers["traceparent"] == TRACEPARENT
    assert seen == [False]  # no span was started, not even a non-recording one


def test_answer_attributes_name_the_message_model_and_error() -> None:
    envelope = Envelope(b"k", "c7", TOPICS.results)
    assert tracing.answer_attributes(Answer(envelope, "lin", "3", b"", 1)) == {
        "messaging.message.id": "c7", "modelbus.model": "lin", "modelbus.model_version": "3",
    }
    # A request rejected before its model was known: no model, no version.
    assert tracing.answer_attributes(Answer(envelope, "", "", error=BadRequest("no model"))) == {
        "messaging.message.id": "c7", "error.type": "bad_request",
    }
