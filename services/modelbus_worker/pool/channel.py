"""Async client side of the runtime protocol over a container's unix socket.

One connection per container carries every request, pipelined: a call writes its frame
and waits for the reply, while other calls write theirs behind it. The runtime answers
the frames of one connection in the order they came, so a single reader task hands each
reply to the oldest waiting call. A call that is cancelled (a timeout) keeps its place in
that order; its reply, when it comes, is read and dropped.

Health checks (:meth:`Channel.ping`) open a connection of their own, so they are answered
even while a long ``predict`` keeps the pipelined connection busy.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path
from typing import Any

from modelbus_worker.runtime.protocol import (
    HEADER,
    Kind,
    ProtocolError,
    decode_header,
    frame_chunks,
)

# Exceptions that mean "the container (or its socket) is gone", not "the model failed".
CONNECTION_LOST = (
    ConnectionError,
    EOFError,
    FileNotFoundError,
    asyncio.IncompleteReadError,
    BrokenPipeError,
)

_READ_LIMIT = 1 << 20


def _write_frame(writer: asyncio.StreamWriter, kind: Kind, payload: bytes) -> None:
    for chunk in frame_chunks(kind, payload):  # writelines would join (copy) them
        writer.write(chunk)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[Kind, bytes]:
    kind, length = decode_header(await reader.readexactly(HEADER.size))
    return kind, (await reader.readexactly(length) if length else b"")


class PipelinedConnection:
    """One open connection shared by any number of concurrent calls."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._waiting: deque[asyncio.Future[tuple[Kind, bytes]]] = deque()
        self._failure: BaseException | None = None
        self._task = asyncio.create_task(self._read_replies())

    @classmethod
    async def open(cls, path: Path) -> PipelinedConnection:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=_READ_LIMIT)
        return cls(reader, writer)

    @property
    def usable(self) -> bool:
        return self._failure is None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def call(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, bytes]:
        """Send one frame and wait for its reply (others may be on the wire meanwhile)."""
        if self._failure is not None:
            raise self._failure
        reply: asyncio.Future[tuple[Kind, bytes]] = asyncio.get_running_loop().create_future()
        # Written without an await in between: frames of concurrent calls never interleave,
        # and the order of ``_waiting`` is the order on the wire.
        _write_frame(self._writer, kind, payload)
        self._waiting.append(reply)
        await self._writer.drain()
        return await reply

    async def _read_replies(self) -> None:
        try:
            while True:
                frame = await _read_frame(self._reader)
                if not self._waiting:
                    raise ProtocolError(f"unrequested {frame[0].name} frame from the runtime")
                reply = self._waiting.popleft()
                if not reply.done():  # a cancelled caller's reply is dropped
                    reply.set_result(frame)
        except asyncio.CancelledError:
            self._fail(ConnectionError("connection closed"))
            raise
        except (*CONNECTION_LOST, ProtocolError) as exc:
            self._fail(exc)
        except Exception as exc:  # never leave a caller waiting
            self._fail(ConnectionError(f"connection failed: {exc!r}"))

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(exc)
        self._writer.close()

    def close(self) -> None:
        self._task.cancel()
        self._fail(ConnectionError("connection closed"))


class Channel:
    """The pipelined connection to one container's socket, reopened after a failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: PipelinedConnection | None = None
        self._opening: asyncio.Lock | None = None

    async def _connection(self) -> PipelinedConnection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # concurrent first calls share one connection
            if self._conn is None or not self._conn.usable:
                if self._conn is not None:
                    self._conn.close()
                self._conn = await PipelinedConnection.open(self.path)
            return self._conn

    @property
    def in_flight(self) -> int:
        return self._conn.in_flight if self._conn is not None else 0

    async def call(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, bytes]:
        """One request/reply on the shared connection."""
        conn = await self._connection()
        return await conn.call(kind, payload)

    async def ping(self) -> dict[str, Any]:
        """The runtime's PONG info (pid, model load seconds), on a connection of its own."""
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=_READ_LIMIT)
        try:
            _write_frame(writer, Kind.PING, b"")
            await writer.drain()
            kind, body = await _read_frame(reader)
        finally:
            writer.close()
        if kind != Kind.PONG:
            raise ConnectionError(f"expected PONG, got {kind.name}")
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
