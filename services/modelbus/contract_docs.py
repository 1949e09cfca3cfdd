"""The message contract as Markdown, rendered from the files in ``schemas/``.

The documentation site's contract page (``docs/concepts/contract.md``) is completed with this
text at build time (``docs/hooks/modelbus_docs.py``), so the page says what the files say:
the topics of the AsyncAPI document with who writes and reads them, and one table of fields
per JSON Schema. It reads only the files (no code of the services), and only the JSON Schema
keywords that the generated files use; an unknown shape is shown as ``any``, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ASYNCAPI_FILE = "asyncapi.json"


def render_contract(schema_dir: Path, level: int = 2) -> str:
    """Markdown for every topic and message schema in ``schema_dir``; headings at ``level``."""
    parts = []
    asyncapi = schema_dir / ASYNCAPI_FILE
    if asyncapi.is_file():
        parts.append(render_topics(json.loads(asyncapi.read_text()), level))
    for path in sorted(schema_dir.glob("*.json")):
        if path.name != ASYNCAPI_FILE:
            parts.append(render_schema(path.name, json.loads(path.read_text()), level))
    return "\n".join(parts)


def render_topics(document: Mapping[str, Any], level: int = 2) -> str:
    """One row per topic (with the default prefix) of the AsyncAPI document's channels."""
    topics: dict[str, dict[str, Any]] = {}
    for channel_id, channel in sorted(document.get("channels", {}).items()):
        service, action, *_ = [*str(channel_id).split("."), "", ""]
        topic = topics.setdefault(
            str(channel.get("address", channel_id)),
            {"writers": [], "readers": [], "description": ""},
        )
        role = "writers" if action == "publish" else "readers"
        if service and service not in topic[role]:
            topic[role].append(service)
        if action == "publish" or not topic["description"]:
            topic["description"] = str(channel.get("description", ""))
    version = document.get("info", {}).get("version", "")
    lines = [
        f"{'#' * level} Topics",
        "",
        f"From `{ASYNCAPI_FILE}` (AsyncAPI {document.get('asyncapi', '')}, contract version "
        f"{version}); names with the default `MODELBUS_TOPIC_PREFIX`. The document describes the "
        "services; clients (the SDK, the CLI, any Kafka producer) write the requests and read "
        "the results or their own reply topics.",
        "",
        "| topic | written by (services) | read by (services) | what |",
        "|---|---|---|---|",
    ]
    for address, topic in topics.items():
        lines.append(
            f"| `{address}` | {', '.join(topic['writers']) or '—'} | "
            f"{', '.join(topic['readers']) or '—'} | {_cell(topic['description'])} |"
        )
    return "\n".join(lines) + "\n"


def render_schema(file_name: str, schema: Mapping[str, Any], level: int = 2) -> str:
    """A heading, the schema's description and a table of its fields (and of its ``$defs``)."""
    title = str(schema.get("title", file_name))
    version = schema.get("properties", {}).get("schema_version", {}).get("const")
    stamp = f"`{file_name}`" + (f", `schema_version` {version}" if version else "")
    lines = [f"{'#' * level} {title}", "", stamp, ""]
    if schema.get("description"):
        lines += [_text(schema["description"]), ""]
    lines += _fields(schema)
    for name, definition in schema.get("$defs", {}).items():
        lines += ["", f"{'#' * (level + 1)} {name}", ""]
        if definition.get("description"):
            lines += [_text(definition["description"]), ""]
        lines += _fields(definition)
    return "\n".join(lines) + "\n"


def _fields(schema: Mapping[str, Any]) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    if not properties:
        return ["(no fields)"]
    required = set(schema.get("required", ()))
    lines = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, spec in properties.items():
        meaning = _text(spec.get("description", ""))
        default = spec.get("default")
        if default not in (None, "", [], {}):
            meaning = f"{meaning} (default `{json.dumps(default)}`)".strip()
        lines.append(
            f"| `{name}` | {_cell(type_of(spec))} | {'yes' if name in required else 'no'} | "
            f"{_cell(meaning)} |"
        )
    if schema.get("additionalProperties") is True:
        lines += ["", "Other fields are allowed (and ignored by readers)."]
    return lines


def type_of(spec: Mapping[str, Any]) -> str:
    """A short reading of a property's JSON Schema: ``string``, ``"ok" | "error"``, …"""
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    if "const" in spec:
        return json.dumps(spec["const"])
    if "enum" in spec:
        return " \\| ".join(json.dumps(v) for v in spec["enum"])
    if "anyOf" in spec:
        options = [type_of(option) for option in spec["anyOf"]]
        nullable = "null" in options
        shown = [o for o in options if o != "null"]
        return " \\| ".join(shown or ["null"]) + (" or null" if nullable and shown else "")
    kind = spec.get("type")
    if kind == "array":
        return f"list of {type_of(spec.get('items', {}))}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), Mapping):
        return f"map of {type_of(spec['additionalProperties'])}"
    if isinstance(kind, list):
        return " \\| ".join(str(k) for k in kind)
    if kind is None:
        return "any"
    return str(kind) + (f" ({spec['format']})" if "format" in spec else "")


def _text(value: object) -> str:
    return " ".join(str(value).split())


def _cell(value: str) -> str:
    """Text safe inside a Markdown table cell (a type may already escape its own bars)."""
    out: Iterable[str] = (
        "\\|" if c == "|" and (i == 0 or value[i - 1] != "\\") else c
        for i, c in enumerate(value)
    )
    return "".join(out)
