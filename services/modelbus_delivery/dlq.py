"""Dead-letter copies: the original record as it came, with the reason and its origin."""

from __future__ import annotations

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
            "dlq_error_code": code,
            "dlq_error_message": redact(message)[:MAX_HEADER_VALUE_BYTES],
            "dlq_source": record.topic,
            "dlq_partition": str(record.partition),
            "dlq_offset": str(record.offset),
        },
    )


def dlq_note(dlq_topic: str, topic: str, partition: int, offset: int, code: str,
             message: str) -> Outgoing:
    """A note in place of a record the Kafka client could not decode (no copy possible)."""
    return Outgoing(dlq_topic, None, b"", {
        "dlq_error_code": code,
        "dlq_error_message": redact(message)[:MAX_HEADER_VALUE_BYTES],
        "dlq_source": topic,
        "dlq_partition": str(partition),
        "dlq_offset": str(offset),
    })
