"""Reading Kafka record headers and keys as the contract defines them (pure logic).

Headers are bytes on the wire and anyone can send anything: nothing here raises. What
cannot be used is reported as a problem, and the caller answers it as ``bad_request``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

RawHeaders = Iterable[tuple[str | bytes, bytes | None]]

# Bounds of what is echoed back: an answer must always fit in a record.
MAX_CORRELATION_ID_BYTES = 256
MAX_ECHOED_KEY_BYTES = 4096

REQUEST_HEADERS = ("model", "model_version", "correlation_id", "reply_to", "content-type",
                   "timeout_ms", "chunk_id", "chunk_index", "chunk_count", "notify_progress")


def _text(raw: str | bytes | None) -> str | None:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def header_dict(headers: RawHeaders | None) -> dict[str, str]:
    """Headers as a str→str dict, leniently (undecodable bytes replaced; first one wins)."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        name = key if isinstance(key, str) else key.decode("utf-8", "replace")
        out.setdefault(name, (value or b"").decode("utf-8", "replace"))
    return out


@dataclass(frozen=True)
class HeaderView:
    """The headers a request uses, and what was wrong with them."""

    values: dict[str, str]
    problems: tuple[str, ...]
    conflicting: frozenset[str] = frozenset()  # sent more than once with different values

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


def read_headers(headers: RawHeaders | None, known: Iterable[str] = REQUEST_HEADERS) -> HeaderView:
    """Known headers must be UTF-8 and appear once; unknown ones are kept leniently."""
    wanted = set(known)
    values: dict[str, str] = {}
    seen: dict[str, int] = {}
    problems: list[str] = []
    conflicting: set[str] = set()
    for key, value in headers or ():
        name = _text(key)
        if name is None:
            problems.append(f"a header name is not UTF-8: {_preview(key)}")
            continue
        seen[name] = seen.get(name, 0) + 1
        text = _text(value)
        if name not in wanted:
            lenient = (value or b"").decode("utf-8", "replace") if isinstance(value, bytes) else ""
            if values.setdefault(name, lenient) != lenient:
                conflicting.add(name)
            continue
        if text is None:
            problems.append(f"header {name!r} is not UTF-8: {_preview(value)}")
        elif seen[name] > 1:
            if values.get(name) != text:
                problems.append(f"header {name!r} appears more than once with different values")
        else:
            values[name] = text
    return HeaderView(values, tuple(problems), frozenset(conflicting))


@dataclass(frozen=True)
class Identity:
    """Under which id and key an answer goes back, and why the sender's were not used."""

    correlation_id: str
    key: bytes | None
    problem: str | None = None


def answer_identity(key: bytes | None, headers: HeaderView) -> Identity:
    """Correlation id: the header, else the key, else a new one; both bounded in size."""
    echoed = key if key is None or len(key) <= MAX_ECHOED_KEY_BYTES else None
    given = headers.get("correlation_id").strip()
    if given:
        if len(given.encode()) <= MAX_CORRELATION_ID_BYTES:
            return Identity(given, echoed if key is None or echoed else given.encode())
        generated = uuid.uuid4().hex
        return Identity(generated, echoed or generated.encode(), (
            f"header 'correlation_id' is {len(given.encode())} bytes; at most "
            f"{MAX_CORRELATION_ID_BYTES} are allowed (answered under the generated id {generated})"
        ))
    if key:
        text = _text(key)
        if text is not None and text.strip() and len(key) <= MAX_CORRELATION_ID_BYTES:
            return Identity(text.strip(), key)
        generated = uuid.uuid4().hex
        why = "is not UTF-8" if text is None else f"is {len(key)} bytes"
        return Identity(generated, echoed or generated.encode(), (
            f"no 'correlation_id' header and the record key {why}: it cannot serve as one "
            f"(at most {MAX_CORRELATION_ID_BYTES} UTF-8 bytes); answered under the generated "
            f"id {generated}"
        ))
    return Identity(uuid.uuid4().hex, key)


def _preview(raw: str | bytes | None, limit: int = 40) -> str:
    data = raw.encode() if isinstance(raw, str) else (raw or b"")
    return repr(data[:limit]) + ("…" if len(data) > limit else "")
