"""The W3C trace headers a request carries: the caller's, else the current OTel span's."""

from __future__ import annotations

from modelbus_contract.trace_context import TRACE_HEADERS, valid_traceparent, valid_tracestate

try:
    from opentelemetry.propagate import inject
except ImportError:  # pragma: no cover - the client works without the otel extra
    inject = None  # type: ignore[assignment]


def request_trace_headers(
    traceparent: str | None = None, tracestate: str | None = None
) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) when given, checked; otherwise, when OpenTelemetry
    is installed and a span is current, that span's context; otherwise none.

    Raises ValueError for a given header that is not valid W3C Trace Context (a worker
    would ignore it).
    """
    if traceparent is None:
        if tracestate is not None:
            raise ValueError("a tracestate needs a traceparent")
        return current_trace_headers()
    if not valid_traceparent(traceparent):
        raise ValueError(f"not a valid W3C traceparent: {traceparent[:100]!r}")
    if tracestate is None:
        return {"traceparent": traceparent}
    if not valid_tracestate(tracestate):
        raise ValueError(f"not a valid W3C tracestate: {tracestate[:100]!r}")
    return {"traceparent": traceparent, "tracestate": tracestate}


def current_trace_headers() -> dict[str, str]:
    """The current OTel context as trace headers, by the globally configured propagator
    (W3C Trace Context unless changed); empty without OpenTelemetry or a current span."""
    if inject is None:
        return {}
    carrier: dict[str, str] = {}
    inject(carrier)
    headers = {name: carrier[name] for name in TRACE_HEADERS if name in carrier}
    if not valid_traceparent(headers.get("traceparent", "")):
        return {}
    if not valid_tracestate(headers.get("tracestate", "")):
        headers.pop("tracestate", None)
    return headers
