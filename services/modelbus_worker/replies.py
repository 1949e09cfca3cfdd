"""The records a worker publishes: results, error results and DLQ copies (pure logic)."""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

from modelbus_contract.arrow_codec import ARROW_STREAM, JSON, table_to_ipc
from modelbus_contract.errors import ModelbusError, TooLarge
from modelbus_contract.inference import ErrorBody
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_delivery.dlq import dlq_copy as delivery_dlq_copy
from modelbus_delivery.records import Inbound, Outgoing

from .request import Envelope

MAX_HEADER_MESSAGE = 1000


def label_outputs(table: pa.Table, outputs: list[Parameter]) -> pa.Table:
    """Catalog names and semtypes on the result's fields.

    When the model returns as many columns as the catalog lists outputs, columns are
    renamed by index to the catalog's names (which tags may have overridden).
    """
    schema = _labelled_schema(
        table.schema.serialize().to_pybytes(),  # exact, field metadata included
        tuple((p.name, p.semtype) for p in outputs),
    )
    return pa.Table.from_arrays(table.columns, schema=schema)


@lru_cache(maxsize=256)  # the same few schemas and catalog outputs, answer after answer
def _labelled_schema(
    given_message: bytes, outputs: tuple[tuple[str | None, str | None], ...]
) -> pa.Schema:
    fields = list(pa.ipc.read_schema(pa.py_buffer(given_message)))
    by_name = {name: (name, semtype) for name, semtype in outputs if name}
    rename = len(fields) == len(outputs) and all(name for name, _ in outputs)
    new_fields = []
    for index, f in enumerate(fields):
        param = outputs[index] if rename else by_name.get(f.name)
        name = param[0] if (rename and param is not None and param[0]) else f.name
        metadata = dict(f.metadata or {})
        if param is not None and param[1]:
            metadata[b"semtype"] = param[1].encode()
        new_fields.append(pa.field(name, f.type, f.nullable, metadata or None))
    return pa.schema(new_fields)


def ok_result(envelope: Envelope, entry: CatalogEntry, table: pa.Table) -> Outgoing:
    return Outgoing(
        envelope.reply_to,
        envelope.key,
        table_to_ipc(label_outputs(table, entry.outputs)),
        {
            "correlation_id": envelope.correlation_id,
            "status": "ok",
            "model": entry.name,
            "model_version": entry.version,
            "content-type": ARROW_STREAM,
            **_position(envelope),
        },
    )


def error_result(
    envelope: Envelope, error: ModelbusError, model: str = "", version: str = ""
) -> Outgoing:
    body = ErrorBody(error_code=error.code, error_message=error.message)  # type: ignore[arg-type]
    return Outgoing(
        envelope.reply_to,
        envelope.key,
        body.model_dump_json().encode(),
        {
            "correlation_id": envelope.correlation_id,
            "status": "error",
            "model": model,
            "model_version": version,
            "error_code": error.code,
            "error_message": error.message[:MAX_HEADER_MESSAGE],
            "content-type": JSON,
            **_position(envelope),
        },
    )


def _position(envelope: Envelope) -> dict[str, str]:
    """Where the request was, and the request headers every answer echoes (chunks, trace)."""
    echoed = dict(envelope.echoed)
    if envelope.position is None:
        return echoed
    partition, offset = envelope.position
    return {**echoed, "request_partition": str(partition), "request_offset": str(offset)}


def dlq_copy(dlq_topic: str, record: Inbound, error: ModelbusError) -> Outgoing:
    """The original request as it came, with the reason and where it came from."""
    return delivery_dlq_copy(dlq_topic, record, error.code, error.message)


def too_large_instead(out: Outgoing, limit: int) -> Outgoing:
    """What to publish when ``out`` exceeds the producer's record limit: the same key,
    topic and headers, with a ``too_large`` error in place of the value."""
    error = TooLarge(
        f"the answer is {len(out.value or b'')} bytes, over the record limit of {limit} "
        "bytes: send fewer rows per request"
    )
    body = ErrorBody(error_code="too_large", error_message=error.message)
    return Outgoing(
        out.topic,
        out.key,
        body.model_dump_json().encode(),
        {
            **out.headers,
            "status": "error",
            "error_code": error.code,
            "error_message": error.message[:MAX_HEADER_MESSAGE],
            "content-type": JSON,
        },
    )
