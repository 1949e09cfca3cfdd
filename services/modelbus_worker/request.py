"""Reading a prediction request off a Kafka record (pure logic).

The envelope (correlation id, key, reply topic) is read first and never fails, so that
even a request with broken headers or body can be answered where its sender listens.
Everything that is bounded — ids, reply topics, timeouts, rows, decoded bytes — is checked
here, before any table is materialized.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.arrow_bounds import (
    ArrowStreamInvalid,
    ArrowStreamTooLarge,
    InspectedStream,
    StreamFacts,
    inspect,
)
from modelbus_contract.arrow_codec import ARROW_STREAM
from modelbus_contract.chunks import read_chunk_headers
from modelbus_contract.errors import BadRequest, TooLarge
from modelbus_contract.headers import HeaderView, answer_identity
from modelbus_contract.trace_context import trace_headers

from .reply_policy import ReplyPolicy


@dataclass(frozen=True)
class Envelope:
    """Where and under which id and key the answer to a record goes."""

    key: bytes | None
    correlation_id: str
    reply_to: str
    problems: tuple[str, ...] = ()
    position: tuple[int, int] | None = None  # the request's partition and offset
    echoed: tuple[tuple[str, str], ...] = ()  # request headers the answer carries (chunks, trace)


@dataclass(frozen=True)
class RequestLimits:
    """The operator's bounds on one request."""

    max_bytes: int
    max_rows: int
    max_decoded_bytes: int
    max_timeout_s: float


@dataclass(frozen=True)
class InferenceRequest:
    """A request whose headers were usable: what to run, with what deadline."""

    model: str
    version_spec: str | None
    timeout_s: float
    stream: InspectedStream

    @property
    def facts(self) -> StreamFacts:
        return self.stream.facts


def read_envelope(
    key: bytes | None, headers: HeaderView, policy: ReplyPolicy,
    position: tuple[int, int] | None = None,
) -> Envelope:
    """Correlation id (header, else key, else a new one), the topic to answer on and the
    chunk and valid trace headers to echo."""
    identity = answer_identity(key, headers)
    reply_to, refused = policy.check(headers.get("reply_to").strip())
    chunk = read_chunk_headers(headers)
    problems = [*headers.problems, *(p for p in (identity.problem, refused, chunk.problem) if p)]
    return Envelope(identity.key, identity.correlation_id, reply_to, tuple(problems), position,
                    (*chunk.echoed.items(), *trace_headers(headers).items()))


def read_request(
    envelope: Envelope, headers: HeaderView, value: bytes | None, limits: RequestLimits
) -> InferenceRequest:
    """The request behind an envelope; raises BadRequest or TooLarge with the reason.

    The body's stream metadata is read (rows, decoded size) but nothing is decoded yet.
    """
    if envelope.problems:
        raise BadRequest("; ".join(envelope.problems))
    model = headers.get("model").strip()
    if not model:
        raise BadRequest("missing header 'model' (the registered model name)")
    content_type = headers.get("content-type", ARROW_STREAM).split(";")[0].strip()
    if content_type != ARROW_STREAM:
        raise BadRequest(f"content-type must be {ARROW_STREAM}, not {content_type[:100]!r}")
    timeout_s = _timeout(headers.get("timeout_ms"), limits.max_timeout_s)
    if not value:
        raise BadRequest("empty body: expected one table as an Arrow IPC stream")
    if len(value) > limits.max_bytes:
        raise TooLarge(f"request body is {len(value)} bytes; the limit is {limits.max_bytes}")
    try:
        stream = inspect(value)
    except ArrowStreamInvalid as exc:
        raise BadRequest(f"body is not an Arrow IPC stream: {_detail(exc)}") from None
    except ArrowStreamTooLarge as exc:
        raise TooLarge(str(exc)) from None
    rows = stream.facts.rows
    if rows > limits.max_rows:
        raise TooLarge(f"the request has {rows:,} rows; the limit is {limits.max_rows:,}")
    version = headers.get("model_version").strip() or None
    return InferenceRequest(model, version, timeout_s, stream)


def decode_body(
    request: InferenceRequest, cast_bytes_of: Callable[[int], int], limits: RequestLimits
) -> pa.Table:
    """The request's table, fully validated; TooLarge when it, or its cast to the model's
    input types (``cast_bytes_of`` its rows), would take more than the operator allows
    (judged before decoding)."""
    needed = request.facts.decoded_bytes + cast_bytes_of(request.facts.rows)
    if needed > limits.max_decoded_bytes:
        raise TooLarge(
            f"the request would take {needed:,} bytes once decoded and cast to the model's "
            f"input types; the limit is {limits.max_decoded_bytes:,}"
        )
    try:
        return request.stream.decode(
            max_rows=limits.max_rows, max_decoded_bytes=limits.max_decoded_bytes
        )
    except ArrowStreamInvalid as exc:
        raise BadRequest(f"body is not a valid Arrow IPC stream: {_detail(exc)}") from None
    except ArrowStreamTooLarge as exc:
        raise TooLarge(str(exc)) from None


def _detail(exc: ArrowStreamInvalid) -> str:
    return str(exc).removeprefix("invalid Arrow IPC stream: ")


def _timeout(raw: str | None, maximum: float) -> float:
    """The request's deadline in seconds, capped by the operator's maximum."""
    if raw is None or not raw.strip():
        return maximum
    try:
        ms = float(raw)
    except ValueError:
        raise BadRequest(f"header 'timeout_ms' must be a number, not {raw[:50]!r}") from None
    if not math.isfinite(ms) or ms <= 0:
        raise BadRequest(f"header 'timeout_ms' must be a positive finite number, not {raw[:50]!r}")
    return min(ms / 1000.0, maximum)
