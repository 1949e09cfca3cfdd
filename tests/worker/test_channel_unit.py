"""The pipelined container channel against a runtime stand-in on a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelbus_worker.pool.channel import CONNECTION_LOST, Channel
from modelbus_worker.runtime.protocol import HEADER, Kind, decode_header, encode_frame


class FakeRuntime:
    """Answers frames of each connection in order, as the runtime does: PREDICT payload
    ``b"<delay ms>:<text>"`` is echoed after the delay; PING at once."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, length = decode_header(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length) if length else b""
                if kind == Kind.PING:
                    writer.write(encode_frame(Kind.PONG, json.dumps({"pid": 1}).encode()))
                else:
                    delay, _, text = payload.partition(b":")
                    await asyncio.sleep(int(delay) / 1000)
                    writer.write(encode_frame(Kind.RESULT, text))
                await writer.drain()
        writer.close()

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


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    replies = await asyncio.gather(
        *(channel.call(Kind.PREDICT, f"{(7 * i) % 5}:r{i}".encode()) for i in range(50))
    )
    assert replies == [(Kind.RESULT, f"r{i}".encode()) for i in range(50)]
    assert fake.connections == 1
    assert channel.in_flight == 0
    channel.close()


async def test_a_cancelled_call_keeps_its_place_and_the_next_reply_goes_to_the_next_call(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    slow = asyncio.create_task(channel.call(Kind.PREDICT, b"200:slow"))
    await asyncio.sleep(0.02)
    after = asyncio.create_task(channel.call(Kind.PREDICT, b"0:after"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow, 0.05)
    assert await asyncio.wait_for(after, 2) == (Kind.RESULT, b"after")
    assert await channel.call(Kind.PREDICT, b"0:next") == (Kind.RESULT, b"next")
    assert fake.connections == 1
    channel.close()


async def test_ping_is_answered_on_its_own_connection_while_a_call_is_busy(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    busy = asyncio.create_task(channel.call(Kind.PREDICT, b"500:busy"))
    await asyncio.sleep(0.02)
    assert await asyncio.wait_for(channel.ping(), 0.3) == {"pid": 1}
    assert fake.connections == 2
    assert await busy == (Kind.RESULT, b"busy")
    channel.close()


async def test_a_lost_connection_fails_every_waiting_call_and_the_next_call_reconnects(
    runtime: tuple[FakeRuntime, Path],
) -> None:
    fake, path = runtime
    channel = Channel(path)
    waiting = [asyncio.create_task(channel.call(Kind.PREDICT, b"300:x")) for _ in range(3)]
    await asyncio.sleep(0.05)
    fake.drop_connections()
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 2)
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
