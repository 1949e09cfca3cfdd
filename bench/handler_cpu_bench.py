"""Host CPU per one-row request in the worker's handler stack, without Kafka or containers.

The worker's whole wrapper stack is built as ``modelbus worker`` builds it
(``modelbus.wiring.assemble_worker``: headers and envelope, tracing, metrics, checks and
decoding, batching, labelling and encoding) around an in-process predictor that computes
``y = 2a + b`` (the container's work left out, the same in every version of the code). One-row
request records, made as the client makes them, are handed to it the way the delivery runtime
does, ``--in-flight`` at a time; every answer is checked. It prints the process CPU time per
request (median of ``--rounds``), and, as a same-run floor, the CPU of what every request
costs at least: reading the request body and writing an answer (``ipc_to_table`` and
``table_to_ipc`` of one row).

    .venv/bin/python bench/handler_cpu_bench.py [--requests 20000] [--rounds 5]

Older code: ``PYTHONPATH=<worktree>/services .venv/bin/python bench/handler_cpu_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
import warnings

import pyarrow as pa
import pyarrow.compute as pc

from modelbus.wiring import assemble_worker
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.arrow_codec import ipc_to_table, table_to_ipc
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import configure_logging
from modelbus_delivery.records import Inbound, Outgoing

try:
    from modelbus.heap import settle_heap
except ImportError:  # older code: its services ran with the interpreter's collector settings
    def settle_heap() -> None:
        return None

ENTRY = CatalogEntry(
    name="linear", version="1", status="ready",
    inputs=[Parameter(index=0, name="a", type="double", arrow_type="double"),
            Parameter(index=1, name="b", type="double", arrow_type="double")],
    outputs=[Parameter(index=0, name="y", type="double")],
)


class LinearPredictor:
    """y = 2a + b in this process: what a container answers, without the container."""

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        y = pc.add(pc.multiply(table.column("a"), 2.0), table.column("b"))
        return pa.table({"y": y})

    async def close(self) -> None:
        return None


def request(i: int, topic: str, reply_to: str) -> Inbound:
    """A one-row request as the client sends it."""
    body = to_ipc_stream(pa.table({"a": [float(i)], "b": [1.0]}))
    headers = (("model", b"linear"), ("correlation_id", uuid.uuid4().hex.encode()),
               ("reply_to", reply_to.encode()), ("content-type",
               b"application/vnd.apache.arrow.stream"), ("timeout_ms", b"60000"),
               ("notify_progress", b"true"))
    return Inbound(topic, i % 16, i, b"linear", body, headers, int(time.time() * 1000))


async def round_cpu_ms(handle: object, records: list[Inbound], in_flight: int) -> float:
    """CPU milliseconds per request of handing ``records`` to ``handle``, answers checked."""
    semaphore = asyncio.Semaphore(in_flight)

    async def one(record: Inbound) -> Outgoing:
        async with semaphore:
            (answer,) = await handle(record)  # type: ignore[operator]
        return answer  # type: ignore[no-any-return]

    started = time.process_time()
    answers = await asyncio.gather(*(one(r) for r in records))
    cpu_ms = (time.process_time() - started) * 1e3 / len(records)
    for record, answer in zip(records, answers, strict=True):  # checked outside the time
        if answer.headers.get("status") != "ok":
            raise RuntimeError(f"request {record.offset} failed: {answer.headers}")
        y = ipc_to_table(answer.value or b"").column("y").to_pylist()
        if y != [2.0 * record.offset + 1.0]:
            raise RuntimeError(f"request {record.offset}: wrong answer {y}")
    return cpu_ms


def floor_cpu_ms(records: list[Inbound]) -> float:
    """CPU milliseconds per request of reading its body and writing a one-row answer."""
    started = time.process_time()
    for r in records:
        table = ipc_to_table(r.value or b"")
        table_to_ipc(pa.table({"y": table.column("a")}))
    return (time.process_time() - started) * 1e3 / len(records)


async def run(requests: int, rounds: int, in_flight: int) -> None:
    settings = ModelbusSettings().model_copy(update={"topic_prefix": "bench-cpu."})
    worker = assemble_worker(settings, LinearPredictor())
    worker.catalog.entries[ENTRY.key] = ENTRY
    handle = worker.runtime._handler  # the stack the runtime calls per record
    reply_to = settings.topics.results
    await round_cpu_ms(handle, [request(i, settings.topics.requests, reply_to)
                                for i in range(2000)], in_flight)  # warm-up
    settle_heap()  # as the service runner does before a worker runs
    stack, floor = [], []
    for _ in range(rounds):
        records = [request(i, settings.topics.requests, reply_to) for i in range(requests)]
        stack.append(await round_cpu_ms(handle, records, in_flight))
        floor.append(floor_cpu_ms(records))
    s, f = statistics.median(stack), statistics.median(floor)
    print(f"handler stack: {s * 1e3:.1f} µs CPU per one-row request ({in_flight} in flight, "
          f"batching {'on' if settings.worker_batching else 'off'}; rounds: "
          f"{', '.join(f'{x * 1e3:.1f}' for x in stack)})")
    print(f"floor (decode one row, encode one row): {f * 1e3:.1f} µs; stack ÷ floor "
          f"{s / f:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=256)
    args = parser.parse_args()
    configure_logging("ERROR")
    warnings.filterwarnings("ignore")
    asyncio.run(run(args.requests, args.rounds, args.in_flight))


if __name__ == "__main__":
    main()
