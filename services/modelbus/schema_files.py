"""The contract files in ``schemas/``, generated from the code that produces the messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelbus_contract.channels import CHANNELS, topic_name
from modelbus_contract.dead_letters import DeadLetterHeaders, DlqReplay
from modelbus_contract.inference import (
    ErrorBody,
    ProgressHeaders,
    ReplyAliveHeaders,
    RequestHeaders,
    ResultHeaders,
)
from modelbus_contract.messages import (
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    ServingReport,
)
from modelbus_contract.settings import ModelbusSettings

SERVICES = ("discovery", "catalog", "worker")

# Every file is versioned by name (``*.v1.json``); messages that are JSON documents also
# carry ``schema_version`` in their body.
MESSAGES: tuple[tuple[type[BaseModel], str], ...] = (
    (DiscoveryEvent, "discovery-event"),
    (ModelProblemReport, "model-problem-report"),
    (ServingReport, "serving-report"),
    (CatalogEntry, "catalog-entry"),
    (RequestHeaders, "inference-request-headers"),
    (ResultHeaders, "inference-result-headers"),
    (ProgressHeaders, "inference-progress-headers"),
    (ReplyAliveHeaders, "reply-alive-headers"),
    (ErrorBody, "inference-error-body"),
    (DeadLetterHeaders, "dead-letter-headers"),
    (DlqReplay, "dlq-replay"),
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema of every message of the contract."""
    out: dict[str, dict[str, Any]] = {}
    for model, stem in MESSAGES:
        schema = model.model_json_schema(by_alias=True)
        version = "1"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://modelbus.dev/schemas/{stem}.v{version}.json"
        out[f"{stem}.v{version}.json"] = schema
    return out


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document of the services, generated from the channel table."""
    from faststream.kafka import KafkaBroker
    from faststream.specification import AsyncAPI

    settings = ModelbusSettings.model_construct()  # defaults only, whatever the environment
    brokers: dict[str, KafkaBroker] = {}

    def broker(service: str) -> KafkaBroker:
        if service not in brokers:
            brokers[service] = KafkaBroker(
                settings.kafka_bootstrap_servers, client_id=f"modelbus-{service}"
            )
        return brokers[service]

    for channel in CHANNELS:
        topic = topic_name(settings, channel.role)
        slug = channel.suffix.replace(".", "-")
        for service in channel.subscribers:
            if service in SERVICES:
                broker(service).subscriber(
                    topic, group_id=f"{settings.topic_prefix}{service}",
                    title=f"{service}.consume.{slug}", description=channel.description,
                )(_documented(_consumed(channel)))
        for publisher, message in _published(channel).items():
            if publisher in SERVICES:
                broker(publisher).publisher(
                    topic, title=f"{publisher}.publish.{slug}",
                    description=channel.description, schema=message,
                )
    spec = AsyncAPI(
        *(brokers[s] for s in SERVICES if s in brokers),
        title="modelbus",
        version="1",
        description="Serve MLflow-registry models over Kafka.",
    )
    return json.loads(spec.to_specification().to_json())  # type: ignore[no-any-return]


def _published(channel: Any) -> dict[str, Any]:
    """Service → what it writes to a channel (the union when it writes several messages)."""
    out: dict[str, Any] = {channel.publisher: channel.message}
    for service, message in channel.also_published:
        out[service] = out[service] | message if service in out else message
    return out


def _consumed(channel: Any) -> Any:
    """What subscribers of a channel read: its message, or the union with other writers'."""
    consumed = channel.message
    for _, message in channel.also_published:
        consumed = consumed | message
    return consumed


def _documented(message: Any) -> Any:
    async def handler(body: Any) -> None:  # pragma: no cover - documentation only
        """Documentation only: the services consume through the delivery runtime."""

    handler.__annotations__["body"] = message  # the schema FastStream documents
    return handler


def rendered() -> dict[str, str]:
    """File name → exact file text, as committed."""
    files = {name: _dump(s) for name, s in json_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi_document())
    return files


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
