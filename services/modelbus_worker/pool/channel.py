"""Async client side of the runtime protocol over a container's unix socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from modelbus_worker.runtime.protocol import (
    HEADER,
    Kind,
    decode_header,
    encode_frame,
    encode_header,
)

# Exceptions that mean "the container (or its socket) is gone", not "the model failed".
CONNECTION_LOST = (
    ConnectionError,
    EOFError,
    FileNotFoundError,
    asyncio.IncompleteReadError,
    BrokenPipeError,
)


class Connection:
    """One open connection; used by one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Connection:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
        return cls(reader, writer)

    async def call(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, bytes]:
        """Send one frame and read the reply frame."""
        if len(payload) < 65536:
            self.writer.write(encode_frame(kind, payload))
        else:
            self.writer.write(encode_header(kind, len(payload)))
            self.writer.write(payload)
        await self.writer.drain()
        reply_kind, length = decode_header(await self.reader.readexactly(HEADER.size))
        body = await self.reader.readexactly(length) if length else b""
        return reply_kind, body

    def close(self) -> None:
        self.writer.close()


class Channel:
    """Connections to one container's socket, reused between requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[Connection] = []

    async def call(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, bytes]:
        """One request/reply; a connection that fails or is cancelled is not reused."""
        conn = self._idle.pop() if self._idle else await Connection.open(self.path)
        try:
            reply = await conn.call(kind, payload)
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return reply

    async def ping(self) -> dict[str, Any]:
        """The runtime's PONG info (pid, model load seconds)."""
        kind, body = await self.call(Kind.PING)
        if kind != Kind.PONG:
            raise ConnectionError(f"expected PONG, got {kind.name}")
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
