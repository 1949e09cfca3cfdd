"""The committed contract files in schemas/ agree with the code that produces the messages."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from modelbus import schema_files
from modelbus_contract.errors import ERRORS_BY_CODE
from modelbus_contract.inference import ERROR_CODES
from modelbus_contract.messages import CatalogEntry, DiscoveryEvent, Parameter

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(schema_files.rendered()))
def test_committed_file_matches_the_code(name: str) -> None:
    committed = SCHEMAS / name
    assert committed.is_file(), f"schemas/{name} is missing: run `modelbus schemas`"
    assert committed.read_text() == schema_files.rendered()[name], (
        f"schemas/{name} is stale: run `modelbus schemas` and commit the result"
    )


def test_messages_produced_by_the_code_validate_against_the_files() -> None:
    event = DiscoveryEvent(kind="found", name="m", version="1", fingerprint="f")
    entry = CatalogEntry(
        name="m", version="1", status="ready",
        inputs=[Parameter(index=0, name="Molecule", type="string", semtype="Molecule")],
    )
    for message, stem in ((event, "discovery-event"), (entry, "catalog-entry")):
        schema = json.loads((SCHEMAS / f"{stem}.v1.json").read_text())
        jsonschema.validate(json.loads(message.model_dump_json()), schema)


def test_schema_files_carry_a_version() -> None:
    for name in schema_files.json_schemas():
        schema = json.loads((SCHEMAS / name).read_text())
        assert name.endswith(".v1.json")
        assert schema["$id"].endswith(name)
        if "headers" not in name:  # JSON bodies carry their version in the message too
            assert schema["properties"]["schema_version"]["const"] == "1"


def test_error_codes_of_the_code_and_the_contract_agree() -> None:
    assert set(ERRORS_BY_CODE) == set(ERROR_CODES)
    body = json.loads((SCHEMAS / "inference-error-body.v1.json").read_text())
    assert set(body["properties"]["error_code"]["enum"]) == set(ERROR_CODES)


def test_asyncapi_documents_every_registry_channel() -> None:
    doc = json.loads((SCHEMAS / "asyncapi.json").read_text())
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"modelbus.models.discovered", "modelbus.models.catalog"} <= addresses
