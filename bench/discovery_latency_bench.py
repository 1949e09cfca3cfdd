"""Register → discovery event: polling alone beside MLflow webhooks, at the default poll.

Starts a broker and an MLflow server that delivers webhooks (free ports, temporary
directory), runs discovery in-process with the default poll interval (10 s), first
without and then with its webhook receiver, and registers new versions of one tagged
model, each after a random pause of up to one poll interval (so that registrations land
anywhere in the poll cycle). Prints the time from ``create_model_version`` returning to
the version's event on the discovered topic.

    .venv/bin/python bench/discovery_latency_bench.py [--versions N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import random
import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from mlflow import MlflowClient
from pydantic import SecretStr

# The bench directory is on sys.path when this file is run as a script.
from throughput_bench import log_linear_model, new_version

from modelbus.stack import EmbeddedBroker, EmbeddedMlflow, free_tcp_port
from modelbus.stack.webhook import register_webhook
from modelbus.wiring import build_discovery
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import configure_logging
from modelbus_discovery.webhooks import WEBHOOK_PATH


class DiscoveredTimes:
    """Arrival time of each key on the discovered topic, read as it is written."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self._consumer:
            if record.key is not None:
                async with self._changed:
                    self.seen.setdefault(record.key.decode(), time.monotonic())
                    self._changed.notify_all()

    async def arrival(self, key: str, within_s: float) -> float:
        """When ``key`` arrived (waiting for it up to ``within_s``)."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: key in self.seen)
        return self.seen[key]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def measure(settings: ModelbusSettings, name: str, first: str, versions: int,
                  label: str) -> list[float]:
    discovery = build_discovery(settings)
    times = DiscoveredTimes(settings.kafka_bootstrap_servers, settings.topics.discovered)
    await discovery.start()
    await times.start()
    latencies: list[float] = []
    try:
        await times.arrival(f"{name}/{first}", 60)  # the first listing is done
        for i in range(versions):
            await asyncio.sleep(random.uniform(0, settings.poll_interval_s))
            version = await asyncio.to_thread(new_version, settings.mlflow_tracking_uri, name,
                                              first)
            registered = time.monotonic()
            key = f"{name}/{version}"
            arrived = await times.arrival(key, 3 * settings.poll_interval_s)
            latencies.append(arrived - registered)
            print(f"  {label} {i + 1}/{versions}: {latencies[-1]:.2f} s", flush=True)
    finally:
        await times.stop()
        await discovery.stop()
    return latencies


def summary(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"{label:<22} median {statistics.median(values):6.2f} s   p90 {p90:6.2f} s   "
            f"max {max(values):6.2f} s   (n={len(values)})")


async def main(versions: int) -> None:
    configure_logging("ERROR")
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        async with contextlib.AsyncExitStack() as stack:
            broker = EmbeddedBroker(free_tcp_port(), tmp / "kafka")
            broker.start()
            stack.callback(broker.stop)
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
            server = EmbeddedMlflow(free_tcp_port(), tmp / "mlflow", webhook_key=key)
            server.start()
            stack.callback(server.stop)
            uri = server.tracking_uri
            name = f"bench-discovery-{uuid.uuid4().hex[:8]}"
            first = await asyncio.to_thread(log_linear_model, uri, name)
            base = ModelbusSettings().model_copy(update={
                "kafka_bootstrap_servers": broker.bootstrap_servers, "mlflow_tracking_uri": uri,
            })
            print(f"poll interval {base.poll_interval_s:.0f} s, {versions} versions per mode")

            polling = base.model_copy(update={"topic_prefix": f"bench-dp-{uuid.uuid4().hex}."})
            poll_latencies = await measure(polling, name, first, versions, "polling")

            secret, port = secrets.token_urlsafe(32), free_tcp_port()
            await asyncio.to_thread(register_webhook, uri,
                                    f"http://127.0.0.1:{port}{WEBHOOK_PATH}", secret)
            hooked = base.model_copy(update={
                "topic_prefix": f"bench-dw-{uuid.uuid4().hex}.", "webhook_port": port,
                "webhook_secret": SecretStr(secret),
            })
            hook_latencies = await measure(hooked, name, first, versions, "webhooks")
            MlflowClient(uri, uri).delete_registered_model(name)

    print("\nregister -> discovery event")
    print(summary("polling only", poll_latencies))
    print(summary("webhooks (+ polling)", hook_latencies))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=8, help="new versions per mode")
    asyncio.run(main(parser.parse_args().versions))
