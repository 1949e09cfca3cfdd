"""What the delivery runtime hands a handler, and what a handler hands back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

MAX_HEADER_VALUE_BYTES = 1000
# Records a reader hands out per turn of the event loop. What one chunk starts (handlers,
# answered callers) runs before the next chunk of the same fetch is handed out: under load,
# the two sides of a request/reply work side by side instead of in waves of whole fetches.
RECORDS_PER_TURN = 32


@dataclass(frozen=True)
class Inbound:
    """One consumed record, as the broker delivered it (headers undecoded)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0

    @classmethod
    def of(cls, record: Any) -> Inbound:
        return cls(
            record.topic, record.partition, record.offset, record.key, record.value,
            tuple(record.headers or ()), record.timestamp,
        )

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True)
class Outgoing:
    """One record to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    def stripped(self, note: str) -> Outgoing:
        """The same record without its value and with every header bounded: the last
        resort for a copy the broker refused (e.g. too large)."""
        headers = {k[:100]: v[:MAX_HEADER_VALUE_BYTES] for k, v in self.headers.items()}
        headers["dlq_value_omitted"] = note[:MAX_HEADER_VALUE_BYTES]
        key = self.key if self.key is None or len(self.key) <= 256 else self.key[:256]
        return replace(self, key=key, value=b"", headers=headers)


class PoisonRecord(Exception):
    """Raised by a handler for a record that can never be processed: quarantine it now,
    without spending the retry budget."""
