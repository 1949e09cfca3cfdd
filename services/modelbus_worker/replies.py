"""The records a worker publishes: results, error results and DLQ copies, and the
encoding of output tables with the catalog's labels (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from modelbus_contract.arrow_codec import (
    ARROW_STREAM,
    END_OF_STREAM,
    JSON,
    has_dictionary,
    table_to_ipc,
)
from modelbus_contract.errors import ModelbusError, TooLarge
from modelbus_contract.inference import ErrorBody
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_delivery.dlq import dlq_copy as delivery_dlq_copy
from modelbus_delivery.records import Inbound, Outgoing

from .answer import Answer
from .request import Envelope

MAX_HEADER_MESSAGE = 1000


Outputs = tuple[tuple[str | None, str | None], ...]  # the catalog's (name, semtype) per output


def label_outputs(table: pa.Table, outputs: list[Parameter]) -> pa.Table:
    """Catalog names and semtypes on the result's fields.

    When the model returns as many columns as the catalog lists outputs, columns are
    renamed by index to the catalog's names (which tags may have overridden).
    """
    schema = labelled_schema(table.schema, _outputs(outputs))
    return pa.Table.from_arrays(table.columns, schema=schema)


def _outputs(outputs: list[Parameter]) -> Outputs:
    return tuple((p.name, p.semtype) for p in outputs)


def labelled_schema(given: pa.Schema, outputs: Outputs) -> pa.Schema:
    """``given`` with the catalog's output names and semtypes (field metadata kept)."""
    fields = list(given)
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
    return pa.schema(new_fields)  # schema-level metadata (e.g. pandas') is not kept


@dataclass(frozen=True, slots=True)
class _Labelled:
    """The labelled schema message of one model version's answers."""

    outputs: list[Parameter]  # the catalog entry's list, compared by identity
    given: pa.Schema  # the schema the model answered with
    message: bytes | None  # the labelled schema's IPC message; None: encode in full


class ResultEncoder:
    """Output tables as Arrow IPC stream bytes with the catalog's names and semtypes.

    A record batch message does not name its fields, so only the schema message is
    labelled: it is made once per model version (and again when the model answers with a
    different schema or the catalog entry changed), and each answer is that message, its
    own batches and the end-of-stream marker. The bytes are those of ``table_to_ipc`` of
    ``label_outputs``.
    """

    def __init__(self, max_versions: int = 1024) -> None:
        self._labelled: dict[tuple[str, str], _Labelled] = {}
        self._max_versions = max_versions

    @property
    def versions(self) -> list[tuple[str, str]]:
        """The versions whose labelled schema is remembered, oldest first."""
        return list(self._labelled)

    def encode(self, entry: CatalogEntry, table: pa.Table) -> bytes:
        key = (entry.name, entry.version)
        schema = table.schema
        known = self._labelled.get(key)
        if known is None or known.outputs is not entry.outputs or not known.given.equals(
            schema, check_metadata=True
        ):
            known = self._remember(key, entry.outputs, schema)
        if known.message is None or not table.num_rows:
            return table_to_ipc(label_outputs(table, entry.outputs))
        parts = [known.message]
        parts.extend(batch.serialize().to_pybytes() for batch in table.to_batches())
        parts.append(END_OF_STREAM)
        return b"".join(parts)

    def _remember(
        self, key: tuple[str, str], outputs: list[Parameter], given: pa.Schema
    ) -> _Labelled:
        labelled = labelled_schema(given, _outputs(outputs))
        message = None if has_dictionary(labelled) else labelled.serialize().to_pybytes()
        if len(self._labelled) >= self._max_versions:
            self._labelled.pop(next(iter(self._labelled)))
        known = self._labelled[key] = _Labelled(outputs, given, message)
        return known


def answer_records(answer: Answer, record: Inbound, dlq_topic: str) -> list[Outgoing]:
    """The records that carry ``answer``: its result, and the request's DLQ copy when kept."""
    if answer.error is None:
        return [ok_result(answer.envelope, answer.model, answer.version, answer.body or b"")]
    result = error_result(answer.envelope, answer.error, answer.model, answer.version)
    if not answer.keep_copy:
        return [result]
    return [result, dlq_copy(dlq_topic, record, answer.error)]


def ok_result(envelope: Envelope, model: str, version: str, body: bytes) -> Outgoing:
    """The result of a request that was answered: ``body`` is the output table."""
    return Outgoing(
        envelope.reply_to,
        envelope.key,
        body,
        {
            "correlation_id": envelope.correlation_id,
            "status": "ok",
            "model": model,
            "model_version": version,
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
