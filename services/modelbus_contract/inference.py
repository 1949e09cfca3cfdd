"""Messages of the public contract on the inference side: headers and the error body."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ErrorCode = Literal[
    "model_not_found",
    "model_invalid",
    "bad_request",
    "schema_mismatch",
    "model_failed",
    "model_unavailable",
    "timeout",
    "too_large",
    "internal",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class RequestHeaders(BaseModel):
    """Headers of a prediction request (UTF-8 values); the value is an Arrow IPC stream."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str = Field(description="Registered model name.")
    model_version: str | None = Field(
        default=None,
        description="A version number or `@alias`; default: the newest READY version.",
    )
    correlation_id: str | None = Field(
        default=None,
        description="Echoed on the result; default the record key, else a generated id.",
    )
    reply_to: str | None = Field(default=None, description="Topic for the result.")
    content_type: Literal["application/vnd.apache.arrow.stream"] | None = Field(
        default=None, alias="content-type"
    )
    timeout_ms: str | None = Field(
        default=None, description="Deadline for the inference itself, in milliseconds."
    )
    chunk_id: str | None = Field(
        default=None,
        description="Chunking: the same id on every record of one logical request too large "
        "for one record (at most 256 UTF-8 bytes); each chunk is answered on its own.",
    )
    chunk_index: str | None = Field(
        default=None, description="Chunking: 0-based position of this chunk, decimal digits.",
    )
    chunk_count: str | None = Field(
        default=None,
        description="Chunking, optional: how many chunks the request has (> chunk_index).",
    )
    traceparent: str | None = Field(
        default=None,
        description="W3C Trace Context `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); echoed "
        "on every answer when valid, ignored (never an error) when not.",
    )
    tracestate: str | None = Field(
        default=None,
        description="W3C Trace Context `tracestate` (at most 512 characters of list-members); "
        "echoed when valid and the `traceparent` is.",
    )
    notify_progress: str | None = Field(
        default=None,
        description="`true`: while the model version is being prepared (files, images, "
        "container, model load), the worker sends progress notices for this request to the "
        "reply topic (see `inference-progress-headers`) before its result.",
    )
    replayed_from: str | None = Field(
        default=None,
        description="Set by `modelbus dlq replay` on a request sent again from the DLQ: "
        "`TOPIC/PARTITION@OFFSET` of its dead letter. Workers treat the request like any "
        "other; a later DLQ copy keeps it.",
    )


class ResultHeaders(BaseModel):
    """Headers of a result; the value is Arrow (status ok) or an ErrorBody (status error)."""

    model_config = ConfigDict(populate_by_name=True)

    correlation_id: str
    status: Literal["ok", "error"]
    model: str = Field(description="Model name as requested (empty if none was given).")
    model_version: str = Field(description="The resolved version number (empty if none).")
    content_type: Literal["application/vnd.apache.arrow.stream", "application/json"] = Field(
        alias="content-type"
    )
    error_code: ErrorCode | None = None
    error_message: str | None = Field(default=None, description="At most 1000 characters.")
    request_partition: str | None = Field(
        default=None, description="Partition of the request on the requests topic."
    )
    request_offset: str | None = Field(
        default=None, description="Offset of the request: answers a request that had no "
        "usable correlation id can still be matched by the producer's acknowledgement.",
    )
    chunk_id: str | None = Field(default=None, description="The request's, when it had one.")
    chunk_index: str | None = Field(default=None, description="The request's, when it had one.")
    chunk_count: str | None = Field(default=None, description="The request's, when it had one.")
    traceparent: str | None = Field(
        default=None, description="The request's, when it had a valid one.",
    )
    tracestate: str | None = Field(
        default=None, description="The request's, when it and the traceparent were valid.",
    )


PROGRESS_STATUS = "preparing"


class ProgressHeaders(BaseModel):
    """Headers of a progress notice: an interim record (empty value) on the reply topic,
    keyed like the request, sent only for requests with `notify_progress: true`. It says
    the model version is still being prepared; the result follows. A reader that does not
    ask for notices never gets one; one that reads a shared topic skips any record whose
    `status` is neither `ok` nor `error`."""

    model_config = ConfigDict(populate_by_name=True)

    correlation_id: str
    status: Literal["preparing"]
    model: str
    model_version: str = Field(description="The resolved version number.")
    step: str = Field(description="`queued` (not begun yet), `files`, `images` (dependency "
                      "and runtime images), `container` or `loading`; an open set.")
    elapsed_ms: str = Field(description="Milliseconds since the preparation began.")
    notice_interval_ms: str = Field(
        description="The next notice comes within this many milliseconds while preparation "
        "goes on: a caller may extend its wait by it."
    )


ALIVE_STATUS = "alive"


class ReplyAliveHeaders(BaseModel):
    """Headers of a client's sign of life: a record (no key, empty value) that a client with
    a reply topic of its own writes to it when the topic is made and then every
    `MODELBUS_CLIENT_REPLY_HEARTBEAT_S`. `modelbus topics prune-replies` deletes only private
    reply topics whose newest record is older than its `--idle`. Nothing else writes it, and
    readers skip it like any record whose `status` is neither `ok` nor `error`."""

    status: Literal["alive"]


class ErrorBody(BaseModel):
    """JSON value of an error result."""

    schema_version: Literal["1"] = "1"
    error_code: ErrorCode
    error_message: str


class ArrowStream(BaseModel):
    """Opaque Arrow IPC stream bytes (`application/vnd.apache.arrow.stream`): one table.

    Requests carry the model inputs as columns; `ok` results the outputs, each field with
    `semtype` in its Arrow field metadata where the catalog has one. See the headers in
    `schemas/inference-request-headers.v1.json` and `schemas/inference-result-headers.v1.json`.
    """

    model_config = ConfigDict(title="ArrowStream")
    arrow_ipc_stream: bytes = Field(description="The record value is the raw stream.")
