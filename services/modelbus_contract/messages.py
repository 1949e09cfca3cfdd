"""Messages of the public contract on the registry side (discovery events, catalog entries).

These pydantic models are the single source of the JSON Schema files in ``schemas/``;
``tests/test_schemas.py`` fails when the committed files and this module disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .headers import RawHeaders, header_dict

# How these messages evolve (docs/concepts/contract.md says them too):
# - Every reader ignores fields it does not know (``extra="ignore"``), so a newer writer's
#   additional field never makes a message unreadable for an older reader.
# - Within a schema version, changes are additive only: a new optional field (with a
#   default), a new value where a field is documented as open (``state``, ``step``), a new
#   message type on a topic under its own ``message_type`` header (readers skip types they
#   do not know). Nothing is removed, renamed, retyped or made required.
# - Anything else bumps the Literal of ``schema_version`` and gets a new schema file.
TOLERANT = ConfigDict(extra="ignore")


def version_key(name: str, version: str) -> str:
    """The Kafka key of a model version on every registry-side topic: ``name/version``."""
    return f"{name}/{version}"


def version_order(version: str) -> tuple[int, str]:
    """Sort key of registry version numbers: numerically (10 after 9), anything else first."""
    return (int(version), "") if version.isdigit() else (-1, version)


def utc_now() -> datetime:
    return datetime.now(UTC)


class DiscoveryEvent(BaseModel):
    """A change seen in the registry for one tagged, READY model version."""

    model_config = TOLERANT

    schema_version: Literal["1"] = "1"
    kind: Literal["found", "updated", "removed"]
    name: str
    version: str
    model_tags: dict[str, str] = Field(
        default_factory=dict, description="Tags of the registered model."
    )
    version_tags: dict[str, str] = Field(
        default_factory=dict, description="Tags of the model version."
    )
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing here.")
    run_id: str | None = None
    source: str | None = None
    fingerprint: str = Field(
        description="Hash of everything above that matters to the catalog; "
        "discovery emits `updated` only when it changes."
    )
    emitted_at: datetime = Field(default_factory=utc_now)

    @property
    def key(self) -> str:
        return version_key(self.name, self.version)


class Parameter(BaseModel):
    """One model input or output as the catalog describes it."""

    model_config = TOLERANT

    index: int = Field(ge=0)
    name: str | None = Field(
        description="Column name; null only when nothing names it (an unnamed tensor is "
        "called `input`/`output`, or `input_INDEX`/`output_INDEX` when its side has several)."
    )
    type: str | None = Field(
        default=None,
        description="MLflow signature type (e.g. `string`, `double`, `long`), or `tensor` for "
        "a tensor spec (see `dtype` and `shape`).",
    )
    arrow_type: str | None = Field(
        default=None,
        description="The Arrow type the worker expects (e.g. `string`, `double`; for a tensor "
        "of shape [-1, 10]: `fixed_size_list<item: float>[10]`).",
    )
    dtype: str | None = Field(
        default=None,
        description="Tensors only: the numpy element type (e.g. `float32`, `int64`).",
    )
    shape: list[int] | None = Field(
        default=None,
        description="Tensors only: the tensor's shape, -1 for a variable dimension. The first "
        "dimension is the rows of the request; each row holds the rest of the tensor as a "
        "`fixed_size_list` column (nested once per further dimension; a `list` where a "
        "dimension is variable), a 1-D tensor as a plain column.",
    )
    semtype: str | None = Field(default=None, description="Datagrok semantic type.")
    optional: bool = False


# Serving states a worker reports; the set is open: a reader treats any other as not prepared.
PREPARING, PREPARED, FAILED = "preparing", "prepared", "failed"


class ServingState(BaseModel):
    """One version's readiness on the worker that owns its requests: being prepared (files,
    images, a container), prepared (a request is answered without waiting for any of it), or
    failed (``error_code`` and the decisive line of ``error_message``)."""

    model_config = TOLERANT

    state: str = Field(
        description="`preparing`, `prepared` or `failed`; an open set: treat any other value "
        "as not prepared."
    )
    worker: str = Field(description="The reporting worker (`host:pid` unless configured).")
    step: str | None = Field(
        default=None, description="While preparing: `queued`, `files`, `images`, `container` "
        "or `loading` (an open set).",
    )
    error_code: str | None = Field(default=None, description="When failed: the error code "
                                   "requests get (e.g. `model_unavailable`).")
    error_message: str | None = Field(default=None, description="When failed: its decisive "
                                      "line.")
    seconds: float | None = Field(default=None, description="How long the preparation took "
                                  "(prepared or failed).")
    reported_at: datetime = Field(default_factory=utc_now)

    @property
    def prepared(self) -> bool:
        return self.state == PREPARED


class CatalogEntry(BaseModel):
    """Everything a user or a worker needs to call one model version."""

    model_config = TOLERANT

    schema_version: Literal["1"] = "1"
    name: str
    version: str
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    source: str | None = None
    tags: dict[str, str] = Field(
        default_factory=dict, description="Registered-model tags merged with version tags "
        "(version tags win)."
    )
    inputs: list[Parameter] = Field(default_factory=list)
    outputs: list[Parameter] = Field(default_factory=list)
    has_signature: bool = False
    flavors: list[str] = Field(default_factory=list)
    python_version: str | None = None
    requirements: list[str] = Field(default_factory=list)
    status: Literal["ready", "invalid"]
    problems: list[str] = Field(default_factory=list)
    batching: bool = Field(
        default=True, description="Whether workers may run concurrent requests of this "
        "version in one predict (tag `modelbus.batching=off` on the model or version: false).",
    )
    shards: int = Field(
        default=1, ge=1, description="Request keys clients spread this model's requests over "
        "(`NAME`, `NAME#1`, …, `NAME#K-1`), so that up to K workers serve it (tag "
        "`modelbus.shards=K` on the model or version).",
    )
    serving: ServingState | None = Field(
        default=None, description="How ready the version is to answer at once, as the worker "
        "that owns its requests last reported (null: no worker has prepared it).",
    )
    updated_at: datetime = Field(default_factory=utc_now)

    @property
    def key(self) -> str:
        return version_key(self.name, self.version)


# A worker's report rides on the discovered topic (which the catalog already consumes),
# told apart from discovery events by this header and by its key (``name/version#worker``,
# so compaction never drops a discovery event for it).
MESSAGE_TYPE_HEADER = "message_type"
MODEL_PROBLEM_TYPE = "model_problem"
MODEL_PROBLEM_KEY_SUFFIX = "#worker"
WORKER_PROBLEM_PREFIX = "worker: "
MAX_PROBLEM_CHARS = 500


class ModelProblemReport(BaseModel):
    """A worker's word on starting one model version: the error that keeps it from running
    (``error_code`` and the decisive line of the message), or ``error_code: null`` once it
    started. The catalog shows the problem in the version's entry as
    ``worker: <error_code>: <error_message>`` and removes it again; ``status`` is unchanged."""

    model_config = TOLERANT

    schema_version: Literal["1"] = "1"
    name: str
    version: str
    error_code: str | None = Field(
        default=None, description="The error code requests get (e.g. `model_unavailable`); "
        "null: the version started, any problem a worker reported is gone."
    )
    error_message: str | None = Field(default=None, description="Its decisive line.")
    reported_at: datetime = Field(default_factory=utc_now)

    @property
    def key(self) -> str:
        return problem_report_key(self.name, self.version)

    @property
    def problem(self) -> str | None:
        """The problem as the catalog entry lists it (None for a report that it started)."""
        if self.error_code is None:
            return None
        return worker_problem(self.error_code, self.error_message or "")


SERVING_REPORT_TYPE = "serving_report"
SERVING_REPORT_KEY_SUFFIX = "#serving"


class ServingReport(ServingState):
    """A worker's word on preparing one model version, on the discovered topic (key
    ``name/version#serving``, header ``message_type: serving_report``). The catalog puts it
    in the version's entry as ``serving``."""

    schema_version: Literal["1"] = "1"
    name: str
    version: str

    @property
    def key(self) -> str:
        return f"{version_key(self.name, self.version)}{SERVING_REPORT_KEY_SUFFIX}"

    def state_only(self) -> ServingState:
        return ServingState.model_validate(self.model_dump(include=set(ServingState.model_fields)))


def message_type(headers: RawHeaders | None) -> str:
    """The ``message_type`` header of a discovered-topic record ('' for a discovery event)."""
    return header_dict(headers).get(MESSAGE_TYPE_HEADER, "")


def problem_report_key(name: str, version: str) -> str:
    return f"{version_key(name, version)}{MODEL_PROBLEM_KEY_SUFFIX}"


def worker_problem(error_code: str, message: str) -> str:
    """``worker: <code>: <first line of the message>``, bounded."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    text = f"{WORKER_PROBLEM_PREFIX}{error_code}: {first}".rstrip(": ")
    return text if len(text) <= MAX_PROBLEM_CHARS else f"{text[:MAX_PROBLEM_CHARS - 1]}…"
