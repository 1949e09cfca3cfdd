"""What the catalog publishes when a discovered record or its entry cannot go the normal way."""

from __future__ import annotations

from modelbus_delivery.dlq import dlq_copy, dlq_note
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.writer import PublishFailed


class CatalogQuarantine:
    """A discovered record that cannot be turned into an entry goes to the DLQ with the reason."""

    def __init__(self, dlq_topic: str) -> None:
        self._dlq = dlq_topic

    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return [dlq_copy(self._dlq, record, "bad_request", reason)]

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        return [dlq_copy(self._dlq, record, "internal",
                         f"the entry was refused: {refused.reason}")]

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return [dlq_note(self._dlq, topic, partition, offset, "bad_request", reason)]
