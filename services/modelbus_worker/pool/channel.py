"""Async client side of the runtime protocol over a container's unix socket.

One connection per container carries every request, pipelined: a call writes its frame
and waits for the reply, while other calls write theirs behind it. The runtime answers
the frames of one connection in the order they came, so each reply, parsed as its bytes
arrive, goes to the oldest waiting call. A call that is cancelled (a timeout) keeps its place in
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

class PipelinedConnection(asyncio.Protocol):
    """One open connection shared by any number of concurrent calls.

    Replies are parsed as the bytes arrive (``data_received``) and handed to the oldest
    waiting call there and then: the caller resumes in the loop's next turn, not a turn
    after a reader task woke up.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: deque[asyncio.Future[tuple[Kind, bytes]]] = deque()
        self._failure: BaseException | None = None
        self._paused = False  # the transport's write buffer is full (flow control)
        self._drained: list[asyncio.Future[None]] = []

    @classmethod
    async def open(cls, path: Path) -> PipelinedConnection:
        _, conn = await asyncio.get_running_loop().create_unix_connection(cls, str(path))
        return conn

    @property
    def usable(self) -> bool:
        return (self._failure is None and self._transport is not None
                and not self._transport.is_closing())

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def call(self, kind: Kind, payload: bytes = b"") -> tuple[Kind, bytes]:
        """Send one frame and wait for its reply (others may be on the wire meanwhile)."""
        if self._failure is not None:
            raise self._failure
        transport = self._transport
        assert transport is not None  # set by connection_made before open returns
        reply: asyncio.Future[tuple[Kind, bytes]] = asyncio.get_running_loop().create_future()
        # Written without an await in between: frames of concurrent calls never interleave,
        # and the order of ``_waiting`` is the order on the wire.
        for chunk in frame_chunks(kind, payload):  # writelines would join (copy) them
            transport.write(chunk)
        self._waiting.append(reply)
        if self._paused:
            drained = asyncio.get_running_loop().create_future()
            self._drained.append(drained)
            await drained
        return await reply

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            while len(buffer) >= HEADER.size:
                kind, length = decode_header(bytes(buffer[:HEADER.size]))
                end = HEADER.size + length
                if len(buffer) < end:
                    return
                with memoryview(buffer) as view:
                    payload = bytes(view[HEADER.size:end])
                del buffer[:end]
                if not self._waiting:
                    raise ProtocolError(f"unrequested {kind.name} frame from the runtime")
                reply = self._waiting.popleft()
                if not reply.done():  # a cancelled caller's reply is dropped
                    reply.set_result((kind, payload))
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost fails the callers

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buffer:
            lost: BaseException = asyncio.IncompleteReadError(bytes(self._buffer), None)
        else:
            lost = exc if exc is not None else ConnectionError("connection closed by the runtime")
        self._fail(lost)
        self._resume()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._resume()

    def _resume(self) -> None:
        drained, self._drained = self._drained, []
        for waiter in drained:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
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
        conn = await PipelinedConnection.open(self.path)
        try:
            kind, body = await conn.call(Kind.PING)
        finally:
            conn.close()
        if kind != Kind.PONG:
            raise ConnectionError(f"expected PONG, got {kind.name}")
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
