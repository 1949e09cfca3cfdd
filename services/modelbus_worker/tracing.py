"""OpenTelemetry spans of the worker, when OpenTelemetry is installed (``modelbus[otel]``).

Each request gets a CONSUMER span ``process <requests topic>`` following the OTel messaging
conventions, its parent the trace of the request's W3C ``traceparent``/``tracestate`` (when
valid), and, when the model is called, a child INTERNAL span ``predict <model>``.

Micro-batching: requests that arrive together share one model call. Each request still has
its own ``predict`` span, child of its own consumer span; it lasts from handing the
request's rows to the batcher until its rows come back, and says how many requests and rows
the model call that answered it had (``modelbus.batch.requests``, ``modelbus.batch.rows``;
1 and the request's own rows when it ran alone).

Without OpenTelemetry, ``traced_handler`` and ``traced_predictor`` hand back what they
were given and ``current_span`` is None: nothing is added per request. Spans go to the
global tracer provider (set up by the operator, e.g. with ``opentelemetry-instrument``)
unless one is given; while no global provider is set (OpenTelemetry comes with MLflow, so
it is usually importable), a request goes straight through: no header parsing, no span.

Batching learns of spans only through the ``BatchSpans`` port: the worker service hands
it ``BATCH_SPANS``.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pyarrow as pa

from modelbus_contract.errors import ModelbusError
from modelbus_delivery.records import Inbound

from .answer import Answer, AnswerHandler, Received
from .ports import BatchSpans, Predictor

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the package works without the otel extra
    trace = None  # type: ignore[assignment]

INSTRUMENTATION = "modelbus.worker"
MAX_KEY_ATTRIBUTE_BYTES = 256
# How often a worker without a tracer provider looks again whether one was set.
RECHECK_S = 1.0


def enabled() -> bool:
    """Whether OpenTelemetry is importable."""
    return trace is not None


def current_span() -> Any:
    """The span current in this context (None without OpenTelemetry)."""
    return None if trace is None else trace.get_current_span()


def note_batch(span: Any, requests: int, rows: int) -> None:
    """Record on a request's predict span the model call that answered it."""
    if span is not None:
        span.set_attribute("modelbus.batch.requests", requests)
        span.set_attribute("modelbus.batch.rows", rows)


class _BatchSpans:
    """The ``BatchSpans`` of OpenTelemetry: the current span, batch attributes on it."""

    def current(self) -> Any:
        return current_span()

    def note_batch(self, span: Any, requests: int, rows: int) -> None:
        note_batch(span, requests, rows)


BATCH_SPANS: BatchSpans = _BatchSpans()


def traced_handler(
    handler: AnswerHandler, consumer_group: str, tracer_provider: Any = None
) -> AnswerHandler:
    """``handler`` with a consumer span per request; ``handler`` itself without OTel."""
    if trace is None:
        return handler
    return _TracedHandler(handler, consumer_group, _Tracing(tracer_provider))


def traced_predictor(predictor: Predictor, tracer_provider: Any = None) -> Predictor:
    """``predictor`` with a predict span per call; ``predictor`` itself without OTel."""
    if trace is None:
        return predictor
    return _TracedPredictor(predictor, _Tracing(tracer_provider))


class _Tracing:
    """The tracer of a given provider, else of the global one once one is set."""

    def __init__(self, tracer_provider: Any) -> None:
        self._on = tracer_provider is not None
        self._next_check = -math.inf
        self.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)

    def on(self) -> bool:
        """Whether spans would be recorded anywhere. OpenTelemetry sets the global provider
        once for good: until it is set, it is looked for at most every ``RECHECK_S``."""
        if self._on:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + RECHECK_S
        self._on = not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        return self._on


def consumer_attributes(record: Inbound, consumer_group: str) -> dict[str, str | int]:
    """The messaging attributes of a consumed request (pure)."""
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.consumer.group.name": consumer_group,
        "messaging.kafka.consumer.group": consumer_group,
        "messaging.kafka.offset": record.offset,
        "messaging.message.body.size": len(record.value or b""),
    }
    if record.key is not None and len(record.key) <= MAX_KEY_ATTRIBUTE_BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            attributes["messaging.kafka.message.key"] = record.key.decode("utf-8")
    return attributes


def answer_attributes(answer: Answer) -> dict[str, str]:
    """What the answer to a request says about it: message id, model, error code (pure)."""
    attributes = {
        "messaging.message.id": answer.envelope.correlation_id,
        "modelbus.model": answer.model,
        "modelbus.model_version": answer.version,
    }
    if answer.error is not None:
        attributes["error.type"] = answer.error.code
    return {k: v for k, v in attributes.items() if v}


class _TracedHandler:
    def __init__(self, handler: AnswerHandler, consumer_group: str, tracing: _Tracing) -> None:
        self._handler = handler
        self._group = consumer_group
        self._tracing = tracing
        self._propagator = TraceContextTextMapPropagator()

    async def __call__(self, received: Received) -> Answer:
        if not self._tracing.on():
            return await self._handler(received)
        # The envelope echoes the request's trace headers, already validated.
        parent = self._propagator.extract(dict(received.envelope.echoed))
        record = received.record
        with self._tracing.tracer.start_as_current_span(
            f"process {record.topic}", context=parent, kind=trace.SpanKind.CONSUMER,
            attributes=consumer_attributes(record, self._group),
        ) as span:
            answer = await self._handler(received)
            span.set_attributes(answer_attributes(answer))
            if answer.error is not None:
                span.set_status(trace.StatusCode.ERROR, answer.error.message[:300])
            return answer


class _TracedPredictor:
    def __init__(self, predictor: Predictor, tracing: _Tracing) -> None:
        self._predictor = predictor
        self._tracing = tracing

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        if not self._tracing.on():
            return await self._predictor.predict(name, version, table, timeout_s)
        rows = table.num_rows
        with self._tracing.tracer.start_as_current_span(
            f"predict {name}", kind=trace.SpanKind.INTERNAL,
            attributes={"modelbus.model": name, "modelbus.model_version": version,
                        "modelbus.request.rows": rows, "modelbus.batch.requests": 1,
                        "modelbus.batch.rows": rows},
            record_exception=True, set_status_on_exception=True,
        ) as span:
            try:
                return await self._predictor.predict(name, version, table, timeout_s)
            except ModelbusError as exc:
                span.set_attribute("error.type", exc.code)
                raise
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise

    async def close(self) -> None:
        await self._predictor.close()
