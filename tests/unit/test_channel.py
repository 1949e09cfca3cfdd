"""The pipelined container channel against a runtime stand-in on a real unix socket.

The stand-in answers a frame when the test opens its gate, and records every frame it has
read: the tests order calls by what the runtime received, not by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.waiting import async_wait_for

from modelbus_worker.pool.channel import CONNECTION_LOST, Channel
from modelbus_worker.runtime.protocol import HEADER, Kind, decode_header, encode_frame

WAIT_S = 5.0  # bounds a wait for something that happens within a few turns of the loop


class FakeRuntime:
    """Answers frames of each connection in order, as the runtime does: PREDICT payload
    ``b"<gate>:<text>"`` is echoed once the gate is open (gate ``0`` is always open, others
    open with ``open_gate``); PING at once. Frames are read (and recorded in ``received``)
    as they come, while earlier ones wait for their answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.received: list[bytes] = []  # PREDICT payloads, in the order they were read
        self.gates: defaultdict[bytes, asyncio.Event] = defaultdict(asyncio.Event)
        self.gates[b"0"].set()
        self.answering: list[asyncio.Task[None]] = []

    def open_gate(self, gate: bytes) -> None:
        self.gates[gate].set()

    async def until_received(self, count: int) -> None:
        await async_wait_for(lambda: len(self.received) >= count, WAIT_S, interval=0.001,
                             message=f"{count} frames at the runtime")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        frames: asyncio.Queue[tuple[Kind, bytes]] = asyncio.Queue()
        answering = asyncio.create_task(self._answer(frames, writer))
        self.answering.append(answering)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, length = decode_header(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length) if length else b""
                if kind != Kind.PING:
                    self.received.append(payload)
                frames.put_nowait((kind, payload))
        answering.cancel()
        writer.close()

    async def _answer(
        self, frames: asyncio.Queue[tuple[Kind, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                kind, payload = await frames.get()
                if kind == Kind.PING:
                    writer.write(encode_frame(Kind.PONG, json.dumps({"pid": 1}).encode()))
                else:
                    gate, _, text = payload.partition(b":")
                    await self.gates[gate].wait()
                    writer.write(encode_frame(Kind.RESULT, text))
                await writer.drain()

    def drop_connections(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, Path]]:
    fake = FakeRuntime()
    path = tmp_path / "model.sock"
    fake.server = await asyncio.start_unix_server(fake.handle, str(path))
    yield fake, path
    fake.server.close()
    fake.drop_connections()
    for task in fake.answering:
        task.cancel()
    await asyncio.gather(*fake.answering, return_exceptions=True)


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    # Every other call, the first among them, waits for its gate: the runtime has all 50
    # frames before it answers any, then answers each in its turn.
    calls = asyncio.gather(
        *(channel.call(Kind.PREDICT, f"{(i + 1) % 2}:r{i}".encode()) for i in range(50))
    )
    await fake.until_received(50)
    assert channel.in_flight == 50
    fake.open_gate(b"1")
    replies = await asyncio.wait_for(calls, WAIT_S)
    assert replies == [(Kind.RESULT, f"r{i}".encode()) for i in range(50)]
    assert fake.connections == 1
    assert channel.in_flight == 0
    channel.close()


async def test_a_cancelled_call_keeps_its_place_and_the_next_reply_goes_to_the_next_call(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    slow = asyncio.create_task(channel.call(Kind.PREDICT, b"slow:slow"))
    await fake.until_received(1)
    after = asyncio.create_task(channel.call(Kind.PREDICT, b"0:after"))
    await fake.until_received(2)
    with pytest.raises(TimeoutError):  # the slow reply has not come: its gate is shut
        await asyncio.wait_for(slow, 0)
    fake.open_gate(b"slow")  # its reply comes now, ahead of the next call's, and is dropped
    assert await asyncio.wait_for(after, WAIT_S) == (Kind.RESULT, b"after")
    assert await channel.call(Kind.PREDICT, b"0:next") == (Kind.RESULT, b"next")
    assert fake.connections == 1
    channel.close()


async def test_ping_is_answered_on_its_own_connection_while_a_call_is_busy(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    busy = asyncio.create_task(channel.call(Kind.PREDICT, b"busy:busy"))
    await fake.until_received(1)
    assert await asyncio.wait_for(channel.ping(), WAIT_S) == {"pid": 1}
    assert not busy.done()  # answered while the call was still waiting for its reply
    assert fake.connections == 2
    fake.open_gate(b"busy")
    assert await busy == (Kind.RESULT, b"busy")
    channel.close()


async def test_a_lost_connection_fails_every_waiting_call_and_the_next_call_reconnects(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    waiting = [asyncio.create_task(channel.call(Kind.PREDICT, b"held:x")) for _ in range(3)]
    await fake.until_received(3)
    fake.drop_connections()
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), WAIT_S)
    assert all(isinstance(r, CONNECTION_LOST) for r in results), results
    assert await channel.call(Kind.PREDICT, b"0:again") == (Kind.RESULT, b"again")
    assert fake.connections == 2
    channel.close()


async def test_a_missing_socket_is_a_connection_error(tmp_path: Path) -> None:
    channel = Channel(tmp_path / "absent.sock")
    with pytest.raises(CONNECTION_LOST):
        await channel.call(Kind.PREDICT, b"0:x")
    with pytest.raises(CONNECTION_LOST):
        await channel.ping()


async def test_replies_in_any_split_of_the_bytes_reach_their_calls_whole(tmp_path: Path) -> None:
    """Frames are cut where the socket cuts them: byte by byte, several in one write, a
    payload of megabytes; a frame cut off by the runtime closing is a lost connection."""
    big = bytes(range(256)) * 16_384  # 4 MiB
    replies = [encode_frame(Kind.RESULT, b"one"), encode_frame(Kind.RESULT, b""),
               encode_frame(Kind.RESULT, big), encode_frame(Kind.ERROR, b"{}")]
    wire = b"".join(replies)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(4):  # every call's frame is in before any answer goes
            _, length = decode_header(await reader.readexactly(HEADER.size))
            await reader.readexactly(length)
        for i in range(8):  # the first frame byte by byte, the rest in two writes
            writer.write(wire[i:i + 1])
            await writer.drain()
        writer.write(wire[8:100])
        writer.write(wire[100:])
        await writer.drain()
        _, length = decode_header(await reader.readexactly(HEADER.size))
        await reader.readexactly(length)
        writer.write(encode_frame(Kind.RESULT, b"cut off")[:-2])  # then the runtime goes
        await writer.drain()
        writer.close()

    path = tmp_path / "split.sock"
    server = await asyncio.start_unix_server(answer, str(path))
    channel = Channel(path)
    try:
        calls = asyncio.gather(*(channel.call(Kind.PREDICT, b"x" * n) for n in (1, 0, 70_000, 3)))
        assert await asyncio.wait_for(calls, WAIT_S) == [
            (Kind.RESULT, b"one"), (Kind.RESULT, b""), (Kind.RESULT, big), (Kind.ERROR, b"{}")]
        with pytest.raises(CONNECTION_LOST):
            await asyncio.wait_for(channel.call(Kind.PREDICT, b"last"), WAIT_S)
    finally:
        channel.close()
        server.close()
