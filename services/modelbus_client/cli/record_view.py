"""Any record of a modelbus topic, decoded for a person or a machine (pure logic).

``view`` reads one record as it came (``Inbound``) without ever raising: headers are shown
leniently (what is not UTF-8, or repeated with different values, is named in ``problems``),
an Arrow IPC stream body is decoded with the bounded decoder of the contract and kept as a
preview of its first rows, a JSON body is parsed (and, on the registry topics and the replay
ledger, checked against its message), and anything else is shown as its size, its first
bytes in hex and why it could not be read. A record the Kafka client could not decode at
all is a ``Poison``: only where it is, and why, are known.

``render_text`` makes one readable block per record, ``render_json`` one JSON object.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from modelbus_contract.arrow_bounds import ArrowStreamInvalid, ArrowStreamTooLarge, decode_table
from modelbus_contract.channels import (
    CHANNEL_BY_ROLE,
    TopicSettings,
    allowed_reply_pattern,
    topic_name,
)
from modelbus_contract.dead_letters import DlqReplay
from modelbus_contract.headers import read_headers
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    MODEL_PROBLEM_TYPE,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    ServingReport,
)
from modelbus_delivery.records import Inbound

ARROW_MAGIC = b"\xff\xff\xff\xff"  # an Arrow IPC stream message starts with this marker
DEFAULT_ROWS = 5
HEX_PREVIEW_BYTES = 32
MAX_CELL_CHARS = 40
MAX_TEXT_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # bytes, not text

# Short names ``tail`` accepts besides the roles of the channel table.
ALIASES = {"dlq-replays": "dlq_replays", "replays": "dlq_replays"}
# Topics whose JSON values are one message of the contract (by ``message_type`` header).
_MESSAGES: dict[str, dict[str, type[BaseModel]]] = {
    "catalog": {"": CatalogEntry},
    "discovered": {"": DiscoveryEvent, MODEL_PROBLEM_TYPE: ModelProblemReport,
                   SERVING_REPORT_TYPE: ServingReport},
    "dlq_replays": {"": DlqReplay},
}


class Names(TopicSettings, Protocol):
    """What topic names are read from (``ModelbusSettings`` is one)."""

    @property
    def reply_to_pattern(self) -> str | None: ...


def resolve_topic(name: str, settings: Names) -> str:
    """The topic ``name`` stands for: a role (``requests``, ``results``, ``dlq``,
    ``catalog``, ``discovered``, ``dlq-replays``) or a default suffix
    (``inference.requests``) is the configured topic, ``replies.X`` is PREFIX ``replies.X``;
    anything else is a full topic name."""
    role = ALIASES.get(name, name)
    topics = settings_topics(settings)
    if role in CHANNEL_BY_ROLE:
        return topics[role]
    for channel in CHANNEL_BY_ROLE.values():
        if name == channel.suffix:
            return topics[channel.role]
    if name.startswith("replies."):
        return f"{settings.topic_prefix}{name}"
    return name


def role_of(topic: str, settings: Names) -> str | None:
    """The channel role of ``topic``; a reply topic reads like the results (``results``)."""
    for role, name in settings_topics(settings).items():
        if topic == name:
            return role
    if allowed_reply_pattern(settings.topic_prefix, settings.reply_to_pattern).fullmatch(topic):
        return "results"
    return None


def settings_topics(settings: TopicSettings) -> dict[str, str]:
    """Role → configured topic name, for every channel."""
    return {role: topic_name(settings, role) for role in CHANNEL_BY_ROLE}


# ---------------------------------------------------------------------------------------
# bodies


@dataclass(frozen=True)
class ArrowBody:
    """An Arrow IPC stream: its schema, row count and first rows."""

    schema: pa.Schema
    rows: int
    preview: pa.Table
    size: int
    kind: str = "arrow"


@dataclass(frozen=True)
class JsonBody:
    value: Any
    size: int
    kind: str = "json"


@dataclass(frozen=True)
class TextBody:
    """UTF-8 text that is not JSON."""

    text: str
    size: int
    kind: str = "text"


@dataclass(frozen=True)
class NoBody:
    """An empty value (``empty``) or none at all (``tombstone``: a compacted key removed)."""

    kind: str


@dataclass(frozen=True)
class Unreadable:
    """A body that cannot be read as what it claims or seems to be."""

    reason: str
    size: int
    head: bytes
    kind: str = "unreadable"


Body = ArrowBody | JsonBody | TextBody | NoBody | Unreadable


@dataclass(frozen=True)
class Limits:
    """Bounds of decoding an Arrow body (``MODELBUS_MAX_REQUEST_ROWS`` and
    ``MODELBUS_MAX_DECODED_BYTES``) and the rows a preview keeps."""

    max_rows: int = 10_000_000
    max_decoded_bytes: int = 1 << 30
    preview_rows: int = DEFAULT_ROWS


def read_body(value: bytes | None, limits: Limits, expect_arrow: bool = False) -> Body:
    """The body as Arrow, JSON, text, nothing, or unreadable (never raises)."""
    if value is None:
        return NoBody("tombstone")
    if not value:
        return NoBody("empty")
    if value.startswith(ARROW_MAGIC) or expect_arrow:
        try:
            table = decode_table(value, max_rows=limits.max_rows,
                                 max_decoded_bytes=limits.max_decoded_bytes)
        except (ArrowStreamInvalid, ArrowStreamTooLarge) as exc:
            if value.startswith(ARROW_MAGIC):
                return Unreadable(f"not a readable Arrow IPC stream: {exc}", len(value),
                                  value[:HEX_PREVIEW_BYTES])
        else:
            return ArrowBody(table.schema, table.num_rows,
                             table.slice(0, limits.preview_rows), len(value))
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or _CONTROL.search(text):
        return Unreadable("neither an Arrow IPC stream nor UTF-8 text", len(value),
                          value[:HEX_PREVIEW_BYTES])
    try:
        return JsonBody(json.loads(text), len(value))
    except ValueError:
        return TextBody(text, len(value))


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class RecordView:
    """One record as shown: where it is, its key, headers, body and what is wrong with it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: tuple[tuple[str, str], ...]
    body: Body
    problems: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Poison:
    """A record the Kafka client could not decode: only where it is and why are known."""

    topic: str
    partition: int
    offset: int
    reason: str

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


Shown = RecordView | Poison


def view(record: Inbound, role: str | None, limits: Limits) -> RecordView:
    """``record`` decoded for showing; what cannot be used is in ``problems``."""
    headers = tuple(
        (_lenient(name), _lenient(value)) for name, value in record.headers
    )
    problems = list(read_headers(record.headers, known=[name for name, _ in headers]).problems)
    body = read_body(record.value, limits, expect_arrow=_expects_arrow(role, dict(headers)))
    problems.extend(_message_problems(role, dict(headers), body))
    return RecordView(record.topic, record.partition, record.offset, record.timestamp,
                      record.key, headers, body, tuple(problems))


def _lenient(raw: str | bytes | None) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _expects_arrow(role: str | None, headers: Mapping[str, str]) -> bool:
    if role == "requests":
        return True
    return role == "results" and headers.get("status") == "ok"


def _message_problems(role: str | None, headers: Mapping[str, str], body: Body) -> list[str]:
    """Whether a JSON value is the message its topic carries (the registry topics and the
    replay ledger); a message type the reader does not know is not a problem."""
    messages = _MESSAGES.get(role or "")
    if messages is None or not isinstance(body, JsonBody):
        if messages is not None and isinstance(body, ArrowBody | TextBody | Unreadable):
            return [f"the {role} topic holds JSON messages, not this"]
        return []
    model = messages.get(headers.get(MESSAGE_TYPE_HEADER, ""))
    if model is None:
        return []
    try:
        model.model_validate(body.value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return [f"not a valid {model.__name__}: {where}: {first['msg']} "
                f"({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''})"]
    return []


# ---------------------------------------------------------------------------------------
# choosing


def key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def matches(shown: Shown, correlation_id: str | None = None, model: str | None = None) -> bool:
    """Whether a record is of this correlation id (header or key) and of this model (header
    ``model``, a ``name/version`` key or a JSON ``name``). A poison record, of which nothing
    is known, is shown whatever is asked."""
    if isinstance(shown, Poison):
        return True
    if correlation_id is not None and correlation_id not in (
        shown.header("correlation_id"), key_text(shown.key)
    ):
        return False
    if model is not None:
        key = key_text(shown.key) or ""
        named = shown.body.value.get("name") if (
            isinstance(shown.body, JsonBody) and isinstance(shown.body.value, dict)) else None
        if model not in (shown.header("model"), named) and not key.startswith(f"{model}/"):
            return False
    return True


# ---------------------------------------------------------------------------------------
# text


def render_text(shown: Shown) -> str:
    """A block of lines: where and when, the key, one line per header, the body."""
    if isinstance(shown, Poison):
        return f"{shown.where}  UNDECODABLE: {shown.reason}"
    lines = [f"{shown.where}  {_time(shown.timestamp_ms)}  key={_key(shown.key)}"]
    lines.extend(f"  {name}: {_cut(value, 300)}" for name, value in shown.headers)
    lines.extend(f"  ! {problem}" for problem in shown.problems)
    lines.extend(f"  {line}" for line in _body_lines(shown.body))
    return "\n".join(lines)


def _time(ms: int) -> str:
    if ms <= 0:
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _key(key: bytes | None) -> str:
    if key is None:
        return "(none)"
    text = key_text(key)
    return repr(_cut(text, 200)) if text is not None else f"0x{key[:HEX_PREVIEW_BYTES].hex()}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _body_lines(body: Body) -> list[str]:
    if isinstance(body, NoBody):
        return [f"value: {'none (tombstone)' if body.kind == 'tombstone' else 'empty'}"]
    if isinstance(body, Unreadable):
        more = "…" if body.size > len(body.head) else ""
        return [f"value: UNREADABLE ({body.size:,} bytes): {body.reason}",
                f"  {body.head.hex(' ')}{more}"]
    if isinstance(body, TextBody):
        return [f"value: text ({body.size:,} bytes)", f"  {_cut(body.text, MAX_TEXT_CHARS)}"]
    if isinstance(body, JsonBody):
        text = json.dumps(body.value, indent=2, sort_keys=True, default=str)
        return [f"value: JSON ({body.size:,} bytes)",
                *(f"  {line}" for line in _cut(text, MAX_TEXT_CHARS * 4).splitlines())]
    columns = ", ".join(_field(f) for f in body.schema)
    head = (f"value: Arrow ({body.size:,} bytes), {body.rows:,} row{'s' * (body.rows != 1)}: "
            f"{columns}")
    lines = [head, *(f"  {line}" for line in table_lines(body.preview))]
    if body.rows > body.preview.num_rows:
        more = body.rows - body.preview.num_rows
        lines.append(f"  … {more:,} more row{'s' * (more != 1)}")
    return lines


def _field(f: pa.Field) -> str:
    semtype = (f.metadata or {}).get(b"semtype")
    return f"{f.name}: {f.type}" + (f" [{semtype.decode('utf-8', 'replace')}]" if semtype else "")


def table_lines(table: pa.Table) -> list[str]:
    """The table as aligned text: a header line and one line per row (cells cut short)."""
    if table.num_columns == 0:
        return []
    cells = [[_cell(v) for v in column.to_pylist()] for column in table.columns]
    names = [_cut(name, MAX_CELL_CHARS) for name in table.column_names]
    widths = [max([len(name), *map(len, column)]) for name, column in zip(names, cells,
                                                                          strict=True)]
    rows = [names, *zip(*cells, strict=True)] if table.num_rows else [names]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = value if isinstance(value, str) else repr(value) if isinstance(
        value, bytes) else str(value)
    return _cut(re.sub(r"\s+", " ", text), MAX_CELL_CHARS)


# ---------------------------------------------------------------------------------------
# JSON


def render_json(shown: Shown) -> dict[str, Any]:
    """One JSON-ready object per record (``json.dumps(..., default=str)`` for odd values)."""
    where = {"topic": shown.topic, "partition": shown.partition, "offset": shown.offset}
    if isinstance(shown, Poison):
        return {**where, "undecodable": shown.reason}
    return {
        **where,
        "timestamp_ms": shown.timestamp_ms,
        "key": key_text(shown.key) if key_text(shown.key) is not None or shown.key is None
        else {"hex": shown.key.hex()},
        "headers": dict(shown.headers),
        "problems": list(shown.problems),
        "value": _body_json(shown.body),
    }


def _body_json(body: Body) -> dict[str, Any]:
    if isinstance(body, NoBody):
        return {"kind": body.kind}
    if isinstance(body, Unreadable):
        return {"kind": body.kind, "reason": body.reason, "bytes": body.size,
                "head_hex": body.head.hex()}
    if isinstance(body, TextBody):
        return {"kind": body.kind, "bytes": body.size, "text": _cut(body.text, MAX_TEXT_CHARS)}
    if isinstance(body, JsonBody):
        return {"kind": body.kind, "bytes": body.size, "json": body.value}
    return {
        "kind": body.kind, "bytes": body.size, "rows": body.rows,
        "columns": [{"name": f.name, "type": str(f.type),
                     **({"metadata": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                                      for k, v in f.metadata.items()}} if f.metadata else {})}
                    for f in body.schema],
        "preview": body.preview.to_pylist(),
    }


def json_line(shown: Shown) -> str:
    return json.dumps(render_json(shown), default=_jsonable, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return str(value)


@dataclass
class Tally:
    """What a tail showed, for its last line."""

    shown: int = 0
    skipped: int = 0
    poison: int = 0
    unreadable: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, shown: Shown) -> None:
        self.shown += 1
        if isinstance(shown, Poison):
            self.poison += 1
            return
        self.by_kind[shown.body.kind] = self.by_kind.get(shown.body.kind, 0) + 1
        if isinstance(shown.body, Unreadable) or shown.problems:
            self.unreadable += 1
