"""Channel bench: the worker's side of one container call, without the container's work.

A stand-in runtime in a child process answers every ``PREDICT`` frame on a real unix
socket with a fixed one-row ``RESULT``, at once or ``--answer-after-ms`` later (blocking
sockets, as the in-container runtime reads and writes). This process makes one-row calls
through the worker's ``Channel``, one at a time: the wall time per call (median) and the
process CPU per call are what the worker's event loop spends around a container round trip.
As a same-run floor, the same exchange over a blocking socket (``send_frame``/``recv_frame``,
no event loop).

    .venv/bin/python bench/channel_bench.py [--calls 20000] [--rounds 5] [--answer-after-ms 0]

Older code: ``PYTHONPATH=<worktree>/services .venv/bin/python bench/channel_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_worker.pool.channel import Channel
from modelbus_worker.runtime.protocol import Kind, recv_frame, send_frame

REQUEST = table_to_ipc(pa.table({"a": [1.0], "b": [2.0]}))
RESULT = table_to_ipc(pa.table({"y": [4.0]}))


def serve(path: str, delay_s: float) -> None:
    """The stand-in runtime: answers each connection's frames in order, ``delay_s`` after
    each came (0: at once)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    while True:
        conn, _ = server.accept()
        try:
            while True:
                kind, _payload = recv_frame(conn)
                if delay_s:
                    time.sleep(delay_s)
                send_frame(conn, Kind.PONG if kind == Kind.PING else Kind.RESULT,
                           b"{}" if kind == Kind.PING else RESULT)
        except Exception:  # EOF, a broken frame: the next connection
            conn.close()


async def channel_round(path: Path, calls: int) -> tuple[float, float]:
    """Median wall µs and mean CPU µs per call through a ``Channel``."""
    channel = Channel(path)
    try:
        await channel.call(Kind.PREDICT, REQUEST)  # connected before the clock starts
        walls = []
        cpu0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            kind, body = await channel.call(Kind.PREDICT, REQUEST)
            walls.append(time.perf_counter() - t0)
            if kind != Kind.RESULT or body != RESULT:
                raise RuntimeError(f"unexpected answer {kind!r}")
        return statistics.median(walls) * 1e6, (time.process_time() - cpu0) / calls * 1e6
    finally:
        channel.close()


def blocking_round(path: Path, calls: int) -> tuple[float, float]:
    """Median wall µs and mean CPU µs per call over a blocking socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    try:
        walls = []
        cpu0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            send_frame(sock, Kind.PREDICT, REQUEST)
            kind, body = recv_frame(sock)
            walls.append(time.perf_counter() - t0)
            if kind != Kind.RESULT or body != RESULT:
                raise RuntimeError(f"unexpected answer {kind!r}")
        return statistics.median(walls) * 1e6, (time.process_time() - cpu0) / calls * 1e6
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--answer-after-ms", type=float, default=0.0,
                        help="the stand-in answers this long after each call (a model's work: "
                        "the worker's CPU idles in between, as it does between real calls)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runtime.sock"
        runtime = multiprocessing.get_context("spawn").Process(
            target=serve, args=(str(path), args.answer_after_ms / 1000), daemon=True)
        runtime.start()
        deadline = time.monotonic() + 30
        while not path.exists():  # the child binds the socket
            if time.monotonic() > deadline or not runtime.is_alive():
                raise RuntimeError("the stand-in runtime did not start")
            time.sleep(0.01)
        try:
            channel, floor = [], []
            for _ in range(args.rounds):
                channel.append(asyncio.run(channel_round(path, args.calls)))
                floor.append(blocking_round(path, args.calls))
        finally:
            runtime.terminate()
            runtime.join()
    cw, cc = statistics.median(x[0] for x in channel), statistics.median(x[1] for x in channel)
    fw, fc = statistics.median(x[0] for x in floor), statistics.median(x[1] for x in floor)
    print(f"channel: p50 {cw:.1f} µs wall, {cc:.1f} µs CPU per one-row call "
          f"(rounds, wall: {', '.join(f'{x[0]:.1f}' for x in channel)})")
    print(f"floor (blocking socket, no event loop): p50 {fw:.1f} µs wall, {fc:.1f} µs CPU")
    print(f"channel - floor: {cw - fw:.1f} µs wall, {cc - fc:.1f} µs CPU")


if __name__ == "__main__":
    main()
