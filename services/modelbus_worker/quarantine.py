"""What the worker publishes when a request or its answer cannot go the normal way."""

from __future__ import annotations

from modelbus_contract.channels import Topics
from modelbus_contract.errors import BadRequest, InternalError, ModelbusError
from modelbus_contract.headers import read_headers
from modelbus_delivery.dlq import dlq_note
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.writer import PublishFailed, RecordTooLarge

from .replies import dlq_copy, error_result, too_large_instead
from .reply_policy import ReplyPolicy
from .request import read_envelope


class WorkerQuarantine:
    """Answers the requester where it can, and keeps a DLQ copy with the reason."""

    def __init__(self, topics: Topics, policy: ReplyPolicy, max_message_bytes: int) -> None:
        self._topics = topics
        self._policy = policy
        self._limit = max_message_bytes

    def _answer(self, record: Inbound, error: ModelbusError) -> list[Outgoing]:
        headers = read_headers(record.headers)
        envelope = read_envelope(
            record.key, headers, self._policy, (record.partition, record.offset)
        )
        model = headers.get("model")[:256]
        return [error_result(envelope, error, model), dlq_copy(self._topics.dlq, record, error)]

    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return self._answer(record, InternalError(f"the request could not be handled: {reason}"))

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        reason = refused.reason
        if out.topic == self._topics.dlq:
            return [out.stripped(reason)]
        if isinstance(refused, RecordTooLarge) and out.headers.get("status") == "ok":
            answer = too_large_instead(out, self._limit)
            return [answer, dlq_copy(self._topics.dlq, record, InternalError(
                f"the answer could not be published ({reason}); the requester got too_large"
            ))]
        return self._answer(record, InternalError(f"the answer could not be published: {reason}"))

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return [dlq_note(self._topics.dlq, topic, partition, offset, BadRequest.code, reason)]
