"""Dead-letter copies: the original record as it came, with the reason and its origin."""

from __future__ import annotations

from modelbus_contract.dead_letters import (
    DLQ_ERROR_CODE,
    DLQ_ERROR_MESSAGE,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_SOURCE,
)
from modelbus_contract.headers import header_dict
from modelbus_contract.redact import redact

from .records import MAX_HEADER_VALUE_BYTES, Inbound, Outgoing


def dlq_copy(dlq_topic: str, record: Inbound, code: str, message: str) -> Outgoing:
    """``record`` as it came (a record needs a key or a value: an empty value if neither)."""
    return Outgoing(
        dlq_topic,
        record.key,
        record.value if record.value is not None or record.key is not None else b"",
        {
            **header_dict(record.headers),
            DLQ_ERROR_CODE: code,
            DLQ_ERROR_MESSAGE: redact(message)[:MAX_HEADER_VALUE_BYTES],
            DLQ_SOURCE: record.topic,
            DLQ_PARTITION: str(record.partition),
            DLQ_OFFSET: str(record.offset),
        },
    )


def dlq_note(dlq_topic: str, topic: str, partition: int, offset: int, code: str,
             message: str) -> Outgoing:
    """A note in place of a record the Kafka client could not decode (no copy possible)."""
    return Outgoing(dlq_topic, None, b"", {
        DLQ_ERROR_CODE: code,
        DLQ_ERROR_MESSAGE: redact(message)[:MAX_HEADER_VALUE_BYTES],
        DLQ_SOURCE: topic,
        DLQ_PARTITION: str(partition),
        DLQ_OFFSET: str(offset),
    })
