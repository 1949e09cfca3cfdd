"""FastStream declaration of the worker's channels, for the AsyncAPI document.

The worker consumes with its own aiokafka loop (concurrent requests, commit after the
answer is published); these declarations document the channels it owns.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ConfigDict, Field

from modelbus_contract.inference import ErrorBody
from modelbus_contract.settings import ModelbusSettings


class ArrowStream(BaseModel):
    """Opaque Arrow IPC stream bytes (`application/vnd.apache.arrow.stream`): one table.

    Requests carry the model inputs as columns; `ok` results the outputs, each field with
    `semtype` in its Arrow field metadata where the catalog has one. See the headers in
    `schemas/inference-request-headers.v1.json` and `schemas/inference-result-headers.v1.json`.
    """

    model_config = ConfigDict(title="ArrowStream")
    arrow_ipc_stream: bytes = Field(description="The record value is the raw stream.")


def worker_broker(settings: ModelbusSettings) -> KafkaBroker:
    broker = KafkaBroker(settings.kafka_bootstrap_servers, client_id="modelbus-worker")
    topics = settings.topics

    async def requests(body: ArrowStream) -> None:  # pragma: no cover - documentation only
        """Prediction requests (Arrow IPC stream; headers `model`, `model_version`, ...)."""

    broker.subscriber(
        topics.requests,
        group_id=f"{settings.topic_prefix}worker",
        title="worker.consume.inference-requests",
        description="Prediction requests; committed after the answer is published.",
    )(requests)
    result_schema: Any = ArrowStream | ErrorBody
    broker.publisher(
        topics.results,
        title="worker.publish.inference-results",
        description="Results keyed like the request, header `status` ok|error and the "
        "request's `correlation_id`; value Arrow on ok, the JSON error body on error. "
        "Sent to the request's `reply_to` topic when it names one.",
        schema=result_schema,
    )
    broker.publisher(
        topics.dlq,
        title="worker.publish.inference-dlq",
        description="Copies of unreadable requests (bad_request, internal) with headers "
        "`dlq_error_code`, `dlq_error_message`, `dlq_source`.",
        schema=ArrowStream,
    )
    return broker
