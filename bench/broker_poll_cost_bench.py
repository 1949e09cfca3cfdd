"""What a consumer that only polls costs the embedded broker: its CPU, as a share of one core,
while one consumer fetches empty partitions with a given fetch wait, nothing else running.

Every process of a stack polls: the worker's request consumer (the requests and the bulk
requests topics, ``MODELBUS_TOPIC_PARTITIONS`` each) and every client's answer reader, at
``MODELBUS_KAFKA_FETCH_MAX_WAIT_MS`` (5 ms), an answer reader awaiting an answer at
``MODELBUS_KAFKA_FETCH_MAX_WAIT_AWAITING_MS`` (1 ms). The embedded broker answers each fetch
when its wait has passed, so a consumer sends about 1000 / wait fetches a second whether
records come or not, and this is the broker's price for them. A partition holding records
(``--records``, read to its end before the measurement) shows whether the price grows with
what the broker holds. Last, a client's answer reader (``ResultsListener``) with no request
waiting: polling at the quiet wait, and once it has paused for being idle (its default).

    .venv/bin/python bench/broker_poll_cost_bench.py [--seconds 5] [--records 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from soak_bench import broker_pids
from throughput_bench import process_cpu_s

from modelbus.stack import EmbeddedBroker, descendant_pids, free_tcp_port
from modelbus_client.results_listener import IDLE_PAUSE_S, ResultsListener

# (label, topic, partitions polled, fetch wait in ms)
CASES = (
    ("1 empty partition, 5 ms wait", "one", 1, 5),
    ("1 empty partition, 2 ms wait", "one", 1, 2),
    ("1 empty partition, 1 ms wait", "one", 1, 1),
    ("12 empty partitions, 5 ms wait", "many", 12, 5),
    ("24 empty partitions, 5 ms wait (a worker's two request topics)", "many", 24, 5),
    ("24 empty partitions, 1 ms wait", "many", 24, 1),
    ("1 partition at the end of its records, 5 ms wait", "full", 1, 5),
)


def broker_pid() -> int:
    found = broker_pids(descendant_pids(os.getpid()))
    if len(found) != 1:
        raise RuntimeError(f"expected one broker process among this one's children: {found}")
    return found[0]


async def share_of_a_core(pid: int, consumer: AIOKafkaConsumer | None, seconds: float) -> float:
    """The broker's CPU over ``seconds`` while ``consumer`` polls (None: nobody polls)."""
    before, started = process_cpu_s(pid), time.monotonic()
    while time.monotonic() - started < seconds:
        if consumer is None:
            await asyncio.sleep(0.2)
        elif await consumer.getmany(timeout_ms=200):
            raise RuntimeError("records came to a partition that was to stay empty")
    return (process_cpu_s(pid) - before) / (time.monotonic() - started) * 100


async def run(seconds: float, records: int, tmp: Path) -> None:
    broker = EmbeddedBroker(free_tcp_port(), tmp / "kafka")
    broker.start()
    try:
        servers = broker.bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("one", 1, 1), NewTopic("many", 24, 1),
                                       NewTopic("full", 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=servers)
        await producer.start()
        try:
            for _ in range(records):  # one batch each, as requests sent one at a time are
                await producer.send_and_wait("full", b"x" * 600, partition=0)
        finally:
            await producer.stop()
        pid = broker_pid()
        print(f"nobody polling: {await share_of_a_core(pid, None, seconds):5.1f}% of a core")
        for label, topic, partitions, wait_ms in CASES:
            consumer = AIOKafkaConsumer(bootstrap_servers=servers, fetch_max_wait_ms=wait_ms,
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                assigned = [TopicPartition(topic, p) for p in range(partitions)]
                consumer.assign(assigned)
                await consumer.seek_to_end(*assigned)
                await consumer.getmany(timeout_ms=500)
                share = await share_of_a_core(pid, consumer, seconds)
            finally:
                await consumer.stop()
            print(f"{label}: {share:5.1f}% of a core", flush=True)
        for label, idle_pause_s in (("an idle answer reader, never pausing", None),
                                    ("an idle answer reader, paused (the default)",
                                     IDLE_PAUSE_S)):
            listener = ResultsListener(servers, f"answers-{idle_pause_s}", 5,
                                       idle_pause_s=idle_pause_s)
            await listener.start()
            try:
                await asyncio.sleep(2 * IDLE_PAUSE_S)  # past the pause's delay
                if listener.fetching != (idle_pause_s is None):
                    raise RuntimeError(f"{label}: the reader fetching is {listener.fetching}")
                share = await share_of_a_core(pid, None, seconds)
            finally:
                await listener.stop()
            print(f"{label}: {share:5.1f}% of a core", flush=True)
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per case (default 5)")
    parser.add_argument("--records", type=int, default=3000,
                        help="records in the partition read to its end (default 3000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mb-poll-cost-") as tmp:
        asyncio.run(run(args.seconds, args.records, Path(tmp)))
    print(f"({os.cpu_count()} CPUs; one consumer at a time, nothing else on the broker)")


if __name__ == "__main__":
    main()
