"""The contract files in ``schemas/``, generated from the code that produces the messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelbus_contract.inference import ErrorBody, RequestHeaders, ResultHeaders
from modelbus_contract.messages import CatalogEntry, DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings

# Every file is versioned by name (``*.v1.json``); messages that are JSON documents also
# carry ``schema_version`` in their body.
MESSAGES: tuple[tuple[type[BaseModel], str], ...] = (
    (DiscoveryEvent, "discovery-event"),
    (CatalogEntry, "catalog-entry"),
    (RequestHeaders, "inference-request-headers"),
    (ResultHeaders, "inference-result-headers"),
    (ErrorBody, "inference-error-body"),
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
    """The AsyncAPI document FastStream generates for the services, on default settings."""
    from faststream.specification import AsyncAPI

    from modelbus_catalog.service import CatalogService
    from modelbus_discovery.spec import discovery_broker
    from modelbus_worker.spec import worker_broker

    settings = ModelbusSettings.model_construct()  # defaults only, whatever the environment
    brokers = [
        discovery_broker(settings),
        CatalogService(settings, reader=None).broker,  # type: ignore[arg-type]
        worker_broker(settings),
    ]
    spec = AsyncAPI(
        *brokers,
        title="modelbus",
        version="1",
        description="Serve MLflow-registry models over Kafka.",
    )
    return json.loads(spec.to_specification().to_json())  # type: ignore[no-any-return]


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
