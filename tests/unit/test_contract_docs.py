"""The contract page's reference is rendered from the files in schemas/ (modelbus.contract_docs)."""

from __future__ import annotations

import json
from pathlib import Path

from modelbus.contract_docs import render_contract, render_schema, render_topics, type_of

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_every_schema_file_and_topic_is_on_the_page() -> None:
    page = render_contract(SCHEMAS, level=3)
    for path in sorted(SCHEMAS.glob("*.v1.json")):
        schema = json.loads(path.read_text())
        assert f"### {schema['title']}\n\n`{path.name}`" in page
        for field in schema.get("properties", {}):
            assert f"| `{field}` |" in page
    asyncapi = json.loads((SCHEMAS / "asyncapi.json").read_text())
    for channel in asyncapi["channels"].values():
        assert f"| `{channel['address']}` |" in page


def test_every_error_code_of_the_result_headers_is_listed() -> None:
    schema = json.loads((SCHEMAS / "inference-result-headers.v1.json").read_text())
    page = render_schema("inference-result-headers.v1.json", schema)
    for code in schema["properties"]["error_code"]["anyOf"][0]["enum"]:
        assert f'"{code}"' in page


def test_types_are_read_from_the_json_schema_keywords() -> None:
    assert type_of({"type": "string"}) == "string"
    assert type_of({"type": "string", "format": "date-time"}) == "string (date-time)"
    assert type_of({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "integer or null"
    assert type_of({"enum": ["ok", "error"]}) == '"ok" \\| "error"'
    assert type_of({"const": "1"}) == '"1"'
    assert type_of({"type": "array", "items": {"$ref": "#/$defs/Parameter"}}) == (
        "list of Parameter"
    )
    assert type_of({"type": "object", "additionalProperties": {"type": "string"}}) == (
        "map of string"
    )
    assert type_of({}) == "any"


def test_table_cells_stay_in_their_column() -> None:
    schema = {
        "title": "T",
        "required": ["a"],
        "properties": {"a": {"type": "string", "description": "ok|error\nsecond line"}},
    }
    row = next(line for line in render_schema("t.v1.json", schema).splitlines()
               if line.startswith("| `a`"))
    assert row == "| `a` | string | yes | ok\\|error second line |"


def test_topics_name_their_writers_and_readers() -> None:
    document = {
        "asyncapi": "3.0.0",
        "info": {"version": "1"},
        "channels": {
            "worker.consume.requests": {"address": "p.requests", "description": "in"},
            "worker.publish.results": {"address": "p.results", "description": "out"},
            "catalog.publish.results": {"address": "p.results", "description": "out too"},
        },
    }
    page = render_topics(document)
    assert "| `p.requests` | — | worker | in |" in page
    assert "| `p.results` | catalog, worker | — | out" in page
