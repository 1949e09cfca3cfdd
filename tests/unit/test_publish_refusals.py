"""A record the broker or the client refuses for good, as a type: too large or otherwise."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from modelbus_catalog.quarantine import CatalogQuarantine
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.writer import PublishFailed, RecordTooLarge, refusal


@pytest.mark.parametrize("error", [
    MessageSizeTooLargeError("The message is 2000000 bytes when serialized"),  # the client's
    MessageSizeTooLargeError(),  # the broker's MESSAGE_TOO_LARGE (error code 10)
    RecordListTooLargeError(),  # RECORD_LIST_TOO_LARGE (18)
    RecordTooLargeError(),
])
def test_a_size_refusal_is_record_too_large(error: KafkaError) -> None:
    refused = refusal(error)
    assert isinstance(refused, RecordTooLarge) and refused.retriable is False
    assert refused.reason.startswith(type(error).__name__)


def test_other_refusals_are_plain_publish_failures() -> None:
    refused = refusal(InvalidTopicError("too large a name"))
    assert type(refused) is PublishFailed and refused.retriable is False
    assert refused.reason == "InvalidTopicError: [Error 17] InvalidTopicError: too large a name"


def test_the_catalog_quarantines_a_refused_entry_with_the_reason() -> None:
    record = Inbound("t.discovered", 1, 8, b"m/1", b"{}")
    entry = Outgoing("t.catalog", b"m/1", b"{}")
    (copy,) = CatalogQuarantine("t.dlq").unpublishable(record, entry, RecordTooLarge("big"))
    assert (copy.topic, copy.value, copy.headers["dlq_error_code"],
            copy.headers["dlq_error_message"]) == (
        "t.dlq", b"{}", "internal", "the entry was refused: big")
