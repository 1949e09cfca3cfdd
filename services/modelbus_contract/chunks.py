"""The chunking convention: one logical request sent as several records (pure logic).

A producer whose table does not fit in one record sends it as chunks, each an ordinary
request with the same ``chunk_id``, its ``chunk_index`` (0-based, in row order) and, when
known, ``chunk_count``. A worker answers each chunk on its own, like any request, and puts
the three headers on the result, so the producer can put the answers back in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .headers import MAX_CORRELATION_ID_BYTES, HeaderView

CHUNK_HEADERS = ("chunk_id", "chunk_index", "chunk_count")
MAX_CHUNK_NUMBER_DIGITS = 12


@dataclass(frozen=True)
class ChunkHeaders:
    """The chunk headers of a request as they are echoed, and what was wrong with them."""

    echoed: dict[str, str]
    problem: str | None = None


def chunk_headers(chunk_id: str, index: int, count: int | None = None) -> dict[str, str]:
    """The headers of chunk ``index`` (of ``count``, when known) of request ``chunk_id``."""
    headers = {"chunk_id": chunk_id, "chunk_index": str(index)}
    if count is not None:
        headers["chunk_count"] = str(count)
    return headers


def read_chunk_headers(headers: HeaderView) -> ChunkHeaders:
    """The chunk headers to echo; none of them when one is unusable (then ``problem``)."""
    present = {name: headers.values[name] for name in CHUNK_HEADERS if name in headers.values}
    if not present:
        return ChunkHeaders({})
    problem = _problem(present)
    return ChunkHeaders({} if problem else present, problem)


def _problem(present: dict[str, str]) -> str | None:
    chunk_id = present.get("chunk_id")
    if chunk_id is None:
        return "chunk headers without 'chunk_id'"
    if not chunk_id.strip() or len(chunk_id.encode()) > MAX_CORRELATION_ID_BYTES:
        return f"header 'chunk_id' must be 1 to {MAX_CORRELATION_ID_BYTES} UTF-8 bytes"
    index = _number(present.get("chunk_index"))
    if index is None:
        return "header 'chunk_index' must be a whole number from 0, in decimal digits"
    if "chunk_count" in present:
        count = _number(present["chunk_count"])
        if count is None or count <= index:
            return "header 'chunk_count' must be a whole number greater than 'chunk_index'"
    return None


def _number(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    if len(raw) > MAX_CHUNK_NUMBER_DIGITS:
        return None
    return int(raw)
