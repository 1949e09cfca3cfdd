"""Gateway bench (issue 27): the HTTP gateway beside ``mlflow models serve``, same model and
same HTTP client, in one run.

Starts a Tansu broker and an MLflow server (free ports, temporary directory), discovery and
catalog in-process, a worker and a gateway as child processes (as ``modelbus up`` runs
them), registers the linear pyfunc ``y = 2a + b`` (bench/linear_model.py, the demo molecule
model's requirements: its dependency image is reused) and runs ``mlflow models serve
--env-manager local`` for the same version. Then, with one aiohttp client session of C
connections: ``serve`` and the gateway, one-row requests for ``--seconds`` each at 1, 16 and
64 concurrent clients (p50, p99, requests/s), and a 10,000-row request (p50). The floor: a
bare Kafka echo through the same broker (one-row round trip, one at a time), measured in
blocks alternated with blocks of gateway requests one at a time, so that the machine's drift
over the run falls on both alike. Every answer is checked against its request.

    .venv/bin/python bench/gateway_bench.py [--quick] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from soak_bench import Processes
from throughput_bench import (
    KafkaEcho,
    MlflowServe,
    WorkerProcess,
    log_linear_model,
    quiet_logging,
    start_servers,
    wait_in_catalog,
)
from time_split import TimeSplit

from modelbus.client import AsyncModelbusClient
from modelbus.stack import free_tcp_port
from modelbus.wiring import build_catalog, build_discovery, catalog_view
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_config import connection_options

CONCURRENCY = (1, 16, 64)
BIG_ROWS = 10_000
BIG_REPEATS = 7
ECHO_REQUESTS = 300
FLOOR_ROUNDS = 6  # blocks of echo and of gateway requests, alternated
FLOOR_BLOCK = 60  # round trips per block (after a few unrecorded ones)
FLOOR_BLOCK_WARM_UP = 5
WARM_TIMEOUT_S = 900.0  # a missing dependency image is built on the first request


@dataclass
class Cell:
    """One measurement: latencies of the answered requests over ``seconds``."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    split: list[str] = field(default_factory=list)  # where the time went (TimeSplit)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def one_row_body(i: int) -> tuple[bytes, float]:
    a = float(i % 1000)
    return json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[a, 0.5]]}}
                      ).encode(), 2 * a + 0.5


async def invoke(session: aiohttp.ClientSession, url: str, body: bytes) -> list[float]:
    async with session.post(url, data=body,
                            headers={"Content-Type": "application/json"}) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:120]!r}")
        return [p["y"] for p in json.loads(data)["predictions"]]


async def checked_one(
    session: aiohttp.ClientSession, url: str, n: int, cell: Cell
) -> float | None:
    """One-row request ``n``: its round trip in seconds when answered right, else None (the
    error or the wrong answer counted in ``cell``)."""
    body, expected = one_row_body(n)
    t0 = time.perf_counter()
    try:
        answer = await invoke(session, url, body)
    except Exception as exc:  # counted; the others go on
        cell.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        return None
    if answer != [expected]:
        cell.errors["wrong answer"] += 1
        return None
    return time.perf_counter() - t0


async def measure(
    url: str, clients: int, seconds: float, split: TimeSplit | None = None
) -> Cell:
    """``clients`` coroutines posting one-row requests for ``seconds`` (after a short
    warm-up of the connections); with ``split``, where the measured requests' time went."""
    cell = Cell()
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        counter = iter(range(10**9))
        stop_at = 0.0

        async def lane(record: bool) -> None:
            while time.perf_counter() < stop_at:
                took = await checked_one(session, url, next(counter), cell)
                if record and took is not None:
                    cell.latencies.append(took)

        stop_at = time.perf_counter() + min(1.0, seconds / 4)
        await asyncio.gather(*(lane(False) for _ in range(clients)))
        # Read off the event loop: a reading asks two metrics ports and /proc.
        before = await asyncio.to_thread(split.read) if split is not None else None
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(lane(True) for _ in range(clients)))
        cell.seconds = time.perf_counter() - started
        if split is not None and before is not None and cell.latencies:
            mean_ms = statistics.fmean(cell.latencies) * 1000
            cell.split = split.report(before, await asyncio.to_thread(split.read), mean_ms)
    return cell


async def big_request(url: str) -> Cell:
    rows = [[float(i), 1.0] for i in range(BIG_ROWS)]
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}).encode()
    cell = Cell()
    async with aiohttp.ClientSession() as session:
        for _ in range(BIG_REPEATS):
            t0 = time.perf_counter()
            try:
                answer = await invoke(session, url, body)
            except Exception as exc:
                cell.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                continue
            if answer != [2.0 * i + 1.0 for i in range(BIG_ROWS)]:
                cell.errors["wrong answer"] += 1
            cell.latencies.append(time.perf_counter() - t0)
    return cell


@dataclass
class Floor:
    """The echo and the gateway one at a time, in alternated blocks: each one's latencies
    and the difference of their p50s in each round."""

    echo: Cell = field(default_factory=Cell)
    gateway: Cell = field(default_factory=Cell)
    round_gaps: list[float] = field(default_factory=list)


async def floor_and_gateway(settings: ModelbusSettings, url: str, rounds: int) -> Floor:
    """``rounds`` times: a block of bare Kafka echo round trips, then (the echo's consumers
    paused, so that its idle polling costs the broker nothing meanwhile) a block of gateway
    requests one at a time, each after a few unrecorded warm-up round trips."""
    floor = Floor()
    echo = KafkaEcho(settings.kafka_bootstrap_servers, settings.topic_prefix)
    await echo.start()
    body = b"x" * 600  # about a one-row Arrow request
    counter = iter(range(10**9))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(rounds):
                echo_block, gateway_block = Cell(), Cell()
                echo.resume()
                for i in range(FLOOR_BLOCK_WARM_UP + FLOOR_BLOCK):
                    t0 = time.perf_counter()
                    await echo.request(f"e{next(counter)}".encode(), body)
                    if i >= FLOOR_BLOCK_WARM_UP:
                        echo_block.latencies.append(time.perf_counter() - t0)
                echo.pause()
                for i in range(FLOOR_BLOCK_WARM_UP + FLOOR_BLOCK):
                    took = await checked_one(session, url, next(counter), floor.gateway)
                    if took is not None and i >= FLOOR_BLOCK_WARM_UP:
                        gateway_block.latencies.append(took)
                floor.round_gaps.append(gateway_block.pct(0.5) - echo_block.pct(0.5))
                floor.echo.latencies += echo_block.latencies
                floor.gateway.latencies += gateway_block.latencies
    finally:
        await echo.stop()
    return floor


async def client_round_trips(settings: ModelbusSettings, model: str) -> Cell:
    """The same one-row requests through the Python SDK, no HTTP: what the gateway adds to."""
    cell = Cell()
    async with AsyncModelbusClient(settings=settings) as client:
        for i in range(ECHO_REQUESTS + 30):
            a = float(i % 1000)
            t0 = time.perf_counter()
            table = await client.predict(model, {"a": [a], "b": [0.5]})
            if table.column("y").to_pylist() != [2 * a + 0.5]:
                cell.errors["wrong answer"] += 1
            elif i >= 30:
                cell.latencies.append(time.perf_counter() - t0)
    return cell


class GatewayProcess:
    """``modelbus gateway`` as a child process, as ``modelbus up`` runs it."""

    def __init__(self, settings: ModelbusSettings, log_path: Path) -> None:
        self.port, self.metrics_port = free_tcp_port(), free_tcp_port()
        self.env = {
            **os.environ,
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
            "MODELBUS_LOG_LEVEL": os.environ.get("MODELBUS_LOG_LEVEL", "WARNING"),
            "MODELBUS_GATEWAY_PORT": str(self.port),
            "MODELBUS_METRICS_PORT": str(self.metrics_port),
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "modelbus", "gateway"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def wait_answering(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    body, expected = one_row_body(1)
    last: Exception | None = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                if await invoke(session, url, body) == [expected]:
                    return
            except Exception as exc:  # not up yet, or the model still starting
                last = exc
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} not answering after {timeout_s:.0f} s: {last!r}")


async def run(seconds: float, tmp: Path) -> tuple[dict[str, dict[str, Cell]], Floor]:
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-gw-linear-{run_id}"
    results: dict[str, dict[str, Cell]] = {"serve": {}, "gateway": {}}
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-gw-{run_id}.")
        uri = settings.mlflow_tracking_uri
        version = log_linear_model(uri, name)
        discovery, catalog = build_discovery(settings), build_catalog(settings)
        for service in (discovery, catalog):
            await service.start()
            stack.push_async_callback(service.stop)
        view = catalog_view(settings, connection_options(settings))
        await view.start()
        stack.push_async_callback(view.stop)
        await wait_in_catalog(view, f"{name}/{version}")
        worker = WorkerProcess(settings, tmp / "worker.log")
        worker_metrics_port = free_tcp_port()
        worker.env["MODELBUS_METRICS_PORT"] = str(worker_metrics_port)
        await worker.start()
        stack.push_async_callback(worker.stop)
        gateway = GatewayProcess(settings, tmp / "gateway.log")
        gateway.start()
        stack.callback(gateway.stop)
        serve = MlflowServe(f"models:/{name}/{version}", uri, tmp / "serve.log")
        await asyncio.to_thread(serve.start)
        stack.callback(serve.stop)
        urls = {"serve": f"http://127.0.0.1:{serve.port}/invocations",
                "gateway": f"{gateway.url}/models/{name}/invocations"}
        await wait_answering(urls["gateway"], WARM_TIMEOUT_S)
        await wait_answering(urls["serve"], 60)
        print(f"model {name}/{version}; serve on {serve.port}, gateway on {gateway.port}",
              flush=True)
        assert worker.proc is not None and gateway.proc is not None
        processes = await asyncio.to_thread(Processes.find, worker.proc.pid)  # asks Docker
        processes.groups["gateway"] = [gateway.proc.pid]
        split = TimeSplit(worker_metrics_port, gateway.metrics_port, processes)
        floor = await floor_and_gateway(settings, urls["gateway"], FLOOR_ROUNDS)
        results["client"] = {"1": await client_round_trips(settings, name)}
        for target in ("serve", "gateway"):
            for clients in CONCURRENCY:
                one_at_a_time = target == "gateway" and clients == 1
                cell = await measure(urls[target], clients, seconds,
                                     split if one_at_a_time else None)
                results[target][str(clients)] = cell
                print(f"{target:8} {clients:3} clients: {cell.rate:8.0f} req/s, p50 "
                      f"{cell.pct(0.5) * 1000:6.1f} ms, p99 {cell.pct(0.99) * 1000:6.1f} ms"
                      + (f", errors {dict(cell.errors)}" if cell.errors else ""), flush=True)
            results[target]["big"] = await big_request(urls[target])
    return results, floor


def print_table(results: dict[str, dict[str, Cell]], floor: Floor) -> None:
    serve, gateway, client = results["serve"], results["gateway"], results["client"]["1"]
    echo, paired = floor.echo, floor.gateway
    ms = 1000.0
    print("\n| measure | mlflow models serve | gateway | gateway / serve |")
    print("|---|---|---|---|")
    for clients in CONCURRENCY:
        s, g = serve[str(clients)], gateway[str(clients)]
        print(f"| one-row req/s, {clients} clients | {s.rate:,.0f} | {g.rate:,.0f} | "
              f"{g.rate / s.rate:.2f}x |")
        print(f"| one-row p50 / p99, {clients} clients | {s.pct(0.5) * ms:.1f} / "
              f"{s.pct(0.99) * ms:.1f} ms | {g.pct(0.5) * ms:.1f} / {g.pct(0.99) * ms:.1f} ms | "
              f"{g.pct(0.5) / s.pct(0.5):.2f}x / {g.pct(0.99) / s.pct(0.99):.2f}x |")
    sb, gb = serve["big"], gateway["big"]
    print(f"| {BIG_ROWS:,}-row request p50 | {statistics.median(sb.latencies) * ms:.1f} ms | "
          f"{statistics.median(gb.latencies) * ms:.1f} ms | "
          f"{statistics.median(gb.latencies) / statistics.median(sb.latencies):.2f}x |")
    print(f"\nfloor, {FLOOR_ROUNDS} rounds of {FLOOR_BLOCK} echo then {FLOOR_BLOCK} gateway "
          f"round trips one at a time: bare Kafka echo one-row p50 / p99 "
          f"{echo.pct(0.5) * ms:.1f} / {echo.pct(0.99) * ms:.1f} ms, gateway "
          f"{paired.pct(0.5) * ms:.1f} / {paired.pct(0.99) * ms:.1f} ms: the gateway's one-row "
          f"p50 is echo + {(paired.pct(0.5) - echo.pct(0.5)) * ms:.1f} ms (per round: "
          f"{', '.join(f'{g * ms:+.1f}' for g in floor.round_gaps)})")
    print(f"the Python SDK (AsyncModelbusClient.predict, no HTTP), one at a time: p50 / p99 "
          f"{client.pct(0.5) * ms:.1f} / {client.pct(0.99) * ms:.1f} ms; the gateway adds "
          f"{(gateway['1'].pct(0.5) - client.pct(0.5)) * ms:.1f} ms at p50 (HTTP, JSON, "
          f"its own process)")
    print("where the gateway's one-row time went at 1 client (means):")
    print("\n".join(gateway["1"].split))
    errors = {f"{t} {k}": dict(c.errors) for t in ("serve", "gateway", "client")
              for k, c in results[t].items() if c.errors}
    if paired.errors:
        errors["gateway beside the floor"] = dict(paired.errors)
    if errors:
        print(f"errors: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each one-row measurement (default 10)")
    args = parser.parse_args()
    quiet_logging()
    seconds = 3.0 if args.quick else args.seconds
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mb-gateway-bench-") as tmp:
        results, floor = asyncio.run(run(seconds, Path(tmp)))
    print_table(results, floor)
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s; client, gateway, worker, "
          f"broker, MLflow and serve all on this machine at once ({os.cpu_count()} CPUs).")
    if floor.gateway.errors or any(c.errors for t in ("serve", "gateway")
                                   for c in results[t].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
