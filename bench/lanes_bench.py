"""Lanes bench: one-row interactive latency behind a bulk backlog of the same model, with
the bulk lane and with everything on one lane.

Starts a Tansu broker and an MLflow server like bench/throughput_bench.py does (its helpers
are reused), runs discovery and catalog in-process and the worker as its own process
(``modelbus worker``), registers the linear model ``y = 2a + b`` and measures, in one run:

- the quiet baseline: one-row requests sent one at a time, nothing else running;
- a backlog of ``--requests`` requests of ``--rows`` rows for the same model, produced by a
  pipeline straight to a requests topic, then one-row interactive requests sent one at a
  time until the backlog is answered: once with the backlog on the bulk lane
  (``PREFIXinference.requests.bulk``), once with it on the interactive lane (everything on
  one lane, as before lanes existed). Rounds alternate between the two.

For each: the latencies of the interactive requests sent while the backlog was not yet
answered (p50, p90, max, ratio to the quiet baseline) and the backlog's rows/s (first record
produced to last answer read). Every backlog answer is counted per correlation id (each
exactly once).

    .venv/bin/python bench/lanes_bench.py [--requests 2500] [--rows 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from throughput_bench import (
    load,
    log_linear_model,
    quiet_logging,
    start_servers,
    start_with_worker_process,
)

from modelbus.client import AsyncModelbusClient
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.arrow_codec import ARROW_STREAM
from modelbus_contract.headers import header_dict
from modelbus_contract.topic_plan import reply_topic_spec
from modelbus_delivery.topics import assign_all, ensure_topics

QUIET_SAMPLES = 60
DRAIN_TIMEOUT_S = 900.0


@dataclass
class Scenario:
    """One backlog and the interactive requests sent while it was answered."""

    lane: str  # where the backlog went: bulk, or interactive (everything on one lane)
    latencies: list[float] = field(default_factory=list)
    rows_per_s: float = 0.0
    duplicates: int = 0
    missing: int = 0


def table(rows: int, n: int = 0) -> pa.Table:
    return pa.table({"a": [float(n + r) for r in range(rows)], "b": [r / 4 for r in range(rows)]})


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


class AnswerCounter:
    """Counts the answers on a reply topic whose correlation ids start with ``prefix``."""

    def __init__(self, bootstrap: str, topic: str, prefix: str) -> None:
        self.bootstrap, self.topic, self.prefix = bootstrap, topic, prefix
        self.by_cid: Counter[str] = Counter()
        self.last_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return sum(self.by_cid.values())

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._read(ready))
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self, ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=5)
        await consumer.start()
        try:
            await consumer.seek_to_end(*await assign_all(consumer, self.topic, wait_s=10))
            ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        cid = header_dict(record.headers).get("correlation_id", "")
                        if cid.startswith(self.prefix):
                            self.by_cid[cid] += 1
                            self.last_at = time.perf_counter()
        finally:
            await consumer.stop()


async def produce_backlog(bootstrap: str, topic: str, model: str, version: str,
                          reply_to: str, prefix: str, requests: int, rows: int,
                          max_bytes: int) -> None:
    body = to_ipc_stream(table(rows))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1_048_576, max_request_size=max_bytes)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, body, key=model.encode(), headers=[
                ("model", model.encode()), ("model_version", version.encode()),
                ("correlation_id", f"{prefix}{i}".encode()),
                ("content-type", ARROW_STREAM.encode()), ("timeout_ms", b"60000"),
                ("reply_to", reply_to.encode()),
            ])
            for i in range(requests)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def one_row(bus: AsyncModelbusClient, model: str, version: str, n: int) -> float:
    began = time.perf_counter()
    got = await bus.predict(model, table(1, n), version, 120.0)
    took = time.perf_counter() - began
    if got.column("y").to_pylist() != [2.0 * n]:
        raise AssertionError(f"wrong answer for row {n}: {got.column('y').to_pylist()}")
    return took


async def backlog_round(bus: AsyncModelbusClient, model: str, version: str, lane: str,
                        requests: int, rows: int) -> Scenario:
    settings = bus.settings
    topic = settings.topics.requests_bulk if lane == "bulk" else settings.topics.requests
    reply = f"{settings.topic_prefix}replies.bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap_servers,
                        [reply_topic_spec(settings, reply, settings.topic_partitions)])
    prefix = f"backlog-{uuid.uuid4().hex[:8]}-"
    answers = AnswerCounter(settings.kafka_bootstrap_servers, reply, prefix)
    await answers.start()
    scenario = Scenario(lane)
    try:
        began = time.perf_counter()
        await produce_backlog(settings.kafka_bootstrap_servers, topic, model, version, reply,
                              prefix, requests, rows, settings.max_message_bytes)
        produced_s = time.perf_counter() - began
        n = 0
        while answers.count < requests:  # each one sent while the backlog is not answered
            scenario.latencies.append(await one_row(bus, model, version, n))
            n += 1
            if time.perf_counter() - began > DRAIN_TIMEOUT_S:
                raise TimeoutError(f"the backlog was not answered in {DRAIN_TIMEOUT_S} s")
        scenario.rows_per_s = requests * rows / (answers.last_at - began)
        scenario.duplicates = sum(c - 1 for c in answers.by_cid.values())
        scenario.missing = requests - len(answers.by_cid)
        print(f"  {lane:>11} lane backlog: produced in {produced_s:.1f} s, answered in "
              f"{answers.last_at - began:.1f} s; {len(scenario.latencies)} interactive "
              f"requests during it; load {load()}", flush=True)
    finally:
        await answers.stop()
    return scenario


def ms(x: float) -> str:
    return f"{x * 1e3:,.1f} ms"


def report(baseline: list[float], rounds: list[Scenario], requests: int, rows: int) -> None:
    b50 = statistics.median(baseline)
    print(f"\nquiet baseline (one-row interactive requests, one at a time, n={len(baseline)}): "
          f"p50 {ms(b50)}, p90 {ms(p(baseline, 0.9))}")
    print(f"backlog: {requests:,} requests x {rows:,} rows = {requests * rows:,} rows of the "
          f"same model, produced straight to the lane's topic\n")
    print("| backlog on | interactive p50 | p90 | max | p50 ÷ baseline | n | backlog rows/s |")
    print("|---|---|---|---|---|---|---|")
    for lane, label in (("bulk", "bulk lane (lanes)"), ("interactive", "one lane (no lanes)")):
        mine = [s for s in rounds if s.lane == lane]
        lat = [x for s in mine for x in s.latencies]
        rate = statistics.median(s.rows_per_s for s in mine)
        p50 = statistics.median(lat) if lat else float("nan")
        print(f"| {label} | {ms(p50)} | {ms(p(lat, 0.9))} | {ms(max(lat, default=float('nan')))}"
              f" | {p50 / b50:.1f}x | {len(lat)} | {rate:,.0f} (rounds: "
              f"{', '.join(f'{s.rows_per_s:,.0f}' for s in mine)}) |")
    bad = [(s.lane, s.duplicates, s.missing) for s in rounds if s.duplicates or s.missing]
    print(f"\nexactly once: {bad if bad else 'every backlog request answered once'}")


async def run(args: argparse.Namespace, tmp: Path) -> None:
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-lanes-{run_id}"
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-lanes-{run_id}.")
        version = log_linear_model(settings.mlflow_tracking_uri, name)
        bus, _ = await start_with_worker_process(stack, settings, tmp, f"{name}/{version}")
        await bus.predict(name, table(1), version, 900.0)  # files, container: the cold start
        for n in range(20):
            await one_row(bus, name, version, n)
        baseline = [await one_row(bus, name, version, n) for n in range(QUIET_SAMPLES)]
        print(f"quiet baseline p50 {ms(statistics.median(baseline))}", flush=True)
        rounds = []
        for _ in range(args.rounds):
            for lane in ("bulk", "interactive"):
                rounds.append(await backlog_round(bus, name, version, lane, args.requests,
                                                  args.rows))
        report(baseline, rounds, args.requests, args.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_500, help="backlog requests")
    parser.add_argument("--rows", type=int, default=2_000, help="rows per backlog request")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, each a bulk-lane and a one-lane backlog")
    args = parser.parse_args()
    quiet_logging()
    versions = ", ".join(f"{d} {dist_version(d)}" for d in ("aiokafka", "pyarrow", "mlflow"))
    print(f"lanes bench: {os.cpu_count()} CPUs, load {load()}; {versions}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mb-lanes-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s; client, worker, broker and "
          f"MLflow all ran on this machine at once.")


if __name__ == "__main__":
    main()
