"""Dead letters and their replays: the DLQ record's headers, the ``replayed_from`` header
of a request sent again, and the replay ledger's record (messages of the public contract).

A DLQ record is the refused record as it came (key, value, headers) plus the ``dlq_*``
headers below; a record the Kafka client could not decode leaves a note instead (same
headers, empty value, no key). ``modelbus dlq replay`` sends a dead-lettered request back
to the requests topic with its own key, value and headers (``dlq_*`` removed) and
``replayed_from``, then writes a ``DlqReplay`` to the replay ledger, a compacted topic keyed
``PARTITION:OFFSET`` of the dead letter: what is in the ledger is not replayed again
unless asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .messages import TOLERANT, utc_now

DLQ_ERROR_CODE = "dlq_error_code"
DLQ_ERROR_MESSAGE = "dlq_error_message"
DLQ_SOURCE = "dlq_source"
DLQ_PARTITION = "dlq_partition"
DLQ_OFFSET = "dlq_offset"
DLQ_VALUE_OMITTED = "dlq_value_omitted"
DLQ_HEADERS = (DLQ_ERROR_CODE, DLQ_ERROR_MESSAGE, DLQ_SOURCE, DLQ_PARTITION, DLQ_OFFSET,
               DLQ_VALUE_OMITTED)

# On a request sent again from the DLQ: where its dead letter was (``TOPIC/PARTITION@OFFSET``).
REPLAYED_FROM = "replayed_from"


class DeadLetterHeaders(BaseModel):
    """Headers a DLQ record carries besides the original record's own (UTF-8 values)."""

    model_config = ConfigDict(extra="allow")

    dlq_error_code: str = Field(description="Why it was refused: an error code of the "
                                "results (`bad_request`, `internal`, `too_large`, ...).")
    dlq_error_message: str = Field(description="The reason, at most 1000 characters, "
                                   "secrets redacted.")
    dlq_source: str = Field(description="The topic the record was read from.")
    dlq_partition: str = Field(description="Its partition there (decimal).")
    dlq_offset: str = Field(description="Its offset there (decimal).")
    dlq_value_omitted: str | None = Field(
        default=None, description="Present when the broker refused the copy itself (e.g. "
        "too large): the copy has no value and bounded headers, and says why here.",
    )


class DlqReplay(BaseModel):
    """One dead letter sent again (a record of the replay ledger, key ``PARTITION:OFFSET``
    of the dead letter on the DLQ topic)."""

    model_config = TOLERANT

    schema_version: Literal["1"] = "1"
    dlq_topic: str
    dlq_partition: int = Field(ge=0)
    dlq_offset: int = Field(ge=0)
    dlq_timestamp_ms: int | None = Field(
        default=None, description="The dead letter's own timestamp: a record at the same "
        "position of a DLQ topic made anew is another record, not replayed yet.",
    )
    error_code: str | None = Field(default=None, description="Its `dlq_error_code`.")
    correlation_id: str | None = Field(default=None, description="The request's.")
    target_topic: str = Field(description="Where it was sent (the requests topic).")
    target_partition: int | None = None
    target_offset: int | None = None
    replayed_at: datetime = Field(default_factory=utc_now)
    replayed_by: str | None = Field(default=None, description="`user@host` of the operator.")

    @property
    def key(self) -> str:
        return replay_key(self.dlq_partition, self.dlq_offset)


def replay_key(partition: int, offset: int) -> str:
    """The replay ledger's key of the dead letter at ``partition``/``offset``."""
    return f"{partition}:{offset}"


def replayed_from(topic: str, partition: int, offset: int) -> str:
    """The ``replayed_from`` header value: ``TOPIC/PARTITION@OFFSET`` of the dead letter."""
    return f"{topic}/{partition}@{offset}"
