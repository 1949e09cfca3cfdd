"""The worker's handler as the delivery runtime calls it: a record in, records out.

The request's headers are read and its envelope made here, once; the answer handler (with
its tracing and metrics wrappers) decides the ``Answer``; the records that carry it are
made last.
"""

from __future__ import annotations

from modelbus_contract.headers import read_headers
from modelbus_delivery.records import Inbound, Outgoing

from .answer import AnswerHandler, Received
from .replies import answer_records
from .reply_policy import ReplyPolicy
from .request import read_envelope


class Answering:
    """Turns a request record into the records that answer it (result, DLQ copy)."""

    def __init__(self, handler: AnswerHandler, policy: ReplyPolicy, dlq_topic: str) -> None:
        self._handler = handler
        self._policy = policy
        self._dlq_topic = dlq_topic

    async def __call__(self, record: Inbound) -> list[Outgoing]:
        headers = read_headers(record.headers)
        envelope = read_envelope(
            record.key, headers, self._policy, (record.partition, record.offset)
        )
        answer = await self._handler(Received(record, headers, envelope))
        return answer_records(answer, record, self._dlq_topic)
