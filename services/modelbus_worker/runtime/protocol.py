"""Framing between the worker and the in-container runtime (stdlib only; copied into images).

A frame is a 5-byte header — payload length (unsigned 32-bit, big-endian) and a kind
byte — followed by the payload. ``PREDICT`` and ``RESULT`` carry Arrow IPC stream bytes,
``ERROR`` a UTF-8 JSON object ``{"type", "message", "stage"}``; ``PONG``, ``LOAD``
(``{"model": DIR}``, a path inside the container) and ``LOADED`` (``{"load_s", "pid"}``)
carry JSON objects.

A runtime starts in standby (libraries imported, no model): it answers ``PING`` and
waits for one ``LOAD``; a ``PREDICT`` before it is answered with an ``ERROR``.
"""

from __future__ import annotations

import json
import socket
import struct
from enum import IntEnum
from typing import Any

HEADER = struct.Struct(">IB")
MAX_PAYLOAD = 2**32 - 1
_JOIN_BELOW = 65536


class Kind(IntEnum):
    """What a frame carries."""

    PING = 1
    PONG = 2
    PREDICT = 3
    RESULT = 4
    ERROR = 5
    LOAD = 6
    LOADED = 7


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame, or closed mid-frame."""


def encode_header(kind: Kind, length: int) -> bytes:
    """The 5-byte header of a frame whose payload has ``length`` bytes."""
    if not 0 <= length <= MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes does not fit in a frame")
    return HEADER.pack(length, int(kind))


def decode_header(header: bytes) -> tuple[Kind, int]:
    """Kind and payload length read from a 5-byte header."""
    if len(header) != HEADER.size:
        raise ProtocolError(f"short frame header ({len(header)} bytes)")
    length, kind = HEADER.unpack(header)
    try:
        return Kind(kind), length
    except ValueError:
        raise ProtocolError(f"unknown frame kind {kind}") from None


def encode_frame(kind: Kind, payload: bytes = b"") -> bytes:
    """A whole frame as one bytes object (fine for small payloads)."""
    return encode_header(kind, len(payload)) + payload


def decode_frame(data: bytes) -> tuple[Kind, bytes]:
    """Split one complete frame into kind and payload."""
    kind, length = decode_header(data[: HEADER.size])
    payload = data[HEADER.size :]
    if len(payload) != length:
        raise ProtocolError(f"frame says {length} bytes, has {len(payload)}")
    return kind, payload


def encode_error(exc_type: str, message: str, stage: str) -> bytes:
    """The payload of an ``ERROR`` frame."""
    return json.dumps({"type": exc_type, "message": message, "stage": stage}).encode()


def encode_json(value: dict[str, Any]) -> bytes:
    """The payload of a ``PONG``, ``LOAD`` or ``LOADED`` frame."""
    return json.dumps(value).encode()


def decode_json(payload: bytes) -> dict[str, Any]:
    """A JSON object payload (``ERROR``, ``PONG``, ``LOAD``, ``LOADED``); garbage becomes a
    readable dict."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"type": "ProtocolError", "message": repr(payload[:200]), "stage": "protocol"}
    return value if isinstance(value, dict) else {"message": str(value)}


def frame_chunks(kind: Kind, payload: bytes = b"") -> tuple[bytes, ...]:
    """One frame as the chunks to write: joined when small, header apart when large (a big
    payload is not copied just to put five bytes in front of it)."""
    if len(payload) < _JOIN_BELOW:
        return (encode_frame(kind, payload),)
    return encode_header(kind, len(payload)), payload


def send_frame(sock: socket.socket, kind: Kind, payload: bytes = b"") -> None:
    """Blocking send of one frame."""
    for chunk in frame_chunks(kind, payload):
        sock.sendall(chunk)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Blocking read of exactly ``size`` bytes; ``EOFError`` if the peer closed first."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            if got == 0:
                raise EOFError("peer closed the connection")
            raise ProtocolError(f"peer closed after {got} of {size} bytes")
        got += n
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[Kind, bytes]:
    """Blocking read of one frame."""
    kind, length = decode_header(recv_exactly(sock, HEADER.size))
    return kind, recv_exactly(sock, length) if length else b""
