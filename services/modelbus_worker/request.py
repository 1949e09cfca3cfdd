"""Reading a prediction request off a Kafka record (pure logic).

The envelope (correlation id, reply topic) is read first and never fails, so that even
a request with a broken body or missing header can be answered where its sender listens.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.arrow_codec import ARROW_STREAM, ipc_to_table
from modelbus_contract.errors import BadRequest, TooLarge

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True)
class Envelope:
    """Where and under which id the answer to a record goes."""

    key: bytes | None
    correlation_id: str
    reply_to: str
    reply_to_problem: str | None = None


@dataclass(frozen=True)
class InferenceRequest:
    """A request whose headers were readable: what to run, on which table."""

    envelope: Envelope
    model: str
    version_spec: str | None
    table: pa.Table
    timeout_s: float | None = None


def read_envelope(key: bytes | None, headers: dict[str, str], results_topic: str) -> Envelope:
    """Correlation id (header, else key, else a new uuid) and the topic to answer on."""
    correlation_id = headers.get("correlation_id", "").strip()
    if not correlation_id and key:
        correlation_id = key.decode("utf-8", "replace")
    if not correlation_id:
        correlation_id = uuid.uuid4().hex
    reply_to = headers.get("reply_to", "").strip()
    if reply_to and not _TOPIC.match(reply_to):
        return Envelope(key, correlation_id, results_topic, f"invalid reply_to topic {reply_to!r}")
    return Envelope(key, correlation_id, reply_to or results_topic)


def read_request(
    envelope: Envelope, headers: dict[str, str], value: bytes | None, max_bytes: int
) -> InferenceRequest:
    """The request behind an envelope; raises BadRequest or TooLarge with the reason."""
    if envelope.reply_to_problem:
        raise BadRequest(envelope.reply_to_problem)
    model = headers.get("model", "").strip()
    if not model:
        raise BadRequest("missing header 'model' (the registered model name)")
    content_type = headers.get("content-type", ARROW_STREAM).split(";")[0].strip()
    if content_type != ARROW_STREAM:
        raise BadRequest(f"content-type must be {ARROW_STREAM}, not {content_type!r}")
    timeout_s = _timeout(headers.get("timeout_ms"))
    if not value:
        raise BadRequest("empty body: expected one table as an Arrow IPC stream")
    if len(value) > max_bytes:
        raise TooLarge(f"request body is {len(value)} bytes; the limit is {max_bytes}")
    try:
        table = ipc_to_table(value)
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
        raise BadRequest(f"body is not an Arrow IPC stream: {exc}") from None
    version = headers.get("model_version", "").strip() or None
    return InferenceRequest(envelope, model, version, table, timeout_s)


def _timeout(raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        ms = float(raw)
    except ValueError:
        raise BadRequest(f"header 'timeout_ms' must be a number, not {raw!r}") from None
    if ms <= 0:
        raise BadRequest("header 'timeout_ms' must be positive")
    return ms / 1000.0
