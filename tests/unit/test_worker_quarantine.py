"""The worker's quarantine decides by the type of a refusal, never by its wording."""

from __future__ import annotations

import json

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.writer import PublishFailed, RecordTooLarge
from modelbus_worker.quarantine import WorkerQuarantine
from modelbus_worker.reply_policy import ReplyPolicy

SETTINGS = ModelbusSettings.model_construct()
TOPICS = SETTINGS.topics
QUARANTINE = WorkerQuarantine(TOPICS, ReplyPolicy.from_settings(SETTINGS), 1024)
REQUEST = Inbound(TOPICS.requests, 2, 17, b"k", b"body",
                  (("model", b"lin"), ("correlation_id", b"c7")))


def _answer(status: str) -> Outgoing:
    return Outgoing(TOPICS.results, b"k", b"x" * 4096, {"status": status, "correlation_id": "c7"})


def _code(out: Outgoing) -> str:
    return str(json.loads(out.value or b"{}")["error_code"])


def test_an_ok_answer_too_large_becomes_a_too_large_answer_and_a_dlq_copy() -> None:
    answer, copy = QUARANTINE.unpublishable(
        REQUEST, _answer("ok"), RecordTooLarge("MessageSizeTooLargeError: 4200 bytes"))
    assert (answer.topic, answer.headers["correlation_id"], _code(answer)) == (
        TOPICS.results, "c7", "too_large")
    assert "4096 bytes, over the record limit of 1024" in json.loads(answer.value or b"")[
        "error_message"]
    assert (copy.topic, copy.value, copy.headers["dlq_error_code"]) == (
        TOPICS.dlq, b"body", "internal")


def test_a_refusal_that_only_says_too_large_is_an_internal_error() -> None:
    refused = PublishFailed("InvalidRecordError: record too large for the topic",
                            retriable=False)
    answer, copy = QUARANTINE.unpublishable(REQUEST, _answer("ok"), refused)
    assert (_code(answer), copy.topic) == ("internal", TOPICS.dlq)
    assert json.loads(answer.value or b"")["error_message"] == (
        "the answer could not be published: InvalidRecordError: record too large for the topic")


def test_an_error_answer_too_large_is_answered_internal() -> None:
    answer, _ = QUARANTINE.unpublishable(REQUEST, _answer("error"), RecordTooLarge("big"))
    assert _code(answer) == "internal"


def test_a_dlq_copy_refused_goes_without_its_value() -> None:
    copy = Outgoing(TOPICS.dlq, b"k", b"body", {"dlq_error_code": "internal"})
    (stripped,) = QUARANTINE.unpublishable(REQUEST, copy, RecordTooLarge("big"))
    assert (stripped.topic, stripped.value, stripped.headers["dlq_value_omitted"]) == (
        TOPICS.dlq, b"", "big")
