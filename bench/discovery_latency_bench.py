"""Registry change → discovery event: polling alone, MLflow webhooks, and the fast path.

Starts a broker and an MLflow server that delivers webhooks (free ports, temporary
directory) and runs discovery in-process at the default poll interval (10 s) three ways:
polling alone and with its webhook receiver (both with the fast path off: the behaviour
before it), and with the fast path (a look at the most recently updated registered models
every half second) and no webhooks. Each way, it times from the registry call returning to
the event on the discovered topic:

- a new version of a tagged model (``create_model_version``);
- the ``datagrok`` tag set on a new registered model right after its version was created
  (the Datagrok page's flow), and set on one that discovery has already listed untagged
  (a user tagging it later), both ``set_registered_model_tag``: MLflow has no webhook for it.

Each change comes after a random pause, of up to one poll interval when polling alone
decides (so that changes land anywhere in the poll cycle), else of up to a second.

    .venv/bin/python bench/discovery_latency_bench.py [--versions N] [--tags N]
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from modelbus_discovery.service import DiscoveryService
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


@dataclass
class Run:
    """One discovery under test and the tagged model whose versions it registers."""

    uri: str
    name: str
    first: str  # the model's first version
    discovery: DiscoveryService
    pause_s: float  # longest random pause before a change

    async def pause(self) -> None:
        await asyncio.sleep(random.uniform(0, self.pause_s))


Flow = Callable[[Run], Awaitable[tuple[str, float]]]  # → (key, when the call returned)


def untagged_model(uri: str, name: str, of: tuple[str, str]) -> None:
    """Registered model ``name``, untagged, with one version made from version ``of``."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    src = client.get_model_version(*of)
    client.create_registered_model(name)
    client.create_model_version(name, str(src.source), run_id=src.run_id,
                                model_id=src.model_id or str(src.source).rsplit("/", 1)[-1])


def tag_model(uri: str, name: str) -> None:
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_tag(name, "datagrok", "")


async def version_registered(run: Run) -> tuple[str, float]:
    await run.pause()
    version = await asyncio.to_thread(new_version, run.uri, run.name, run.first)
    return f"{run.name}/{version}", time.monotonic()


async def tagged_right_after(run: Run) -> tuple[str, float]:
    await run.pause()
    name = f"{run.name}-now-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(untagged_model, run.uri, name, (run.name, run.first))
    await asyncio.to_thread(tag_model, run.uri, name)
    return f"{name}/1", time.monotonic()


async def tagged_once_listed(run: Run) -> tuple[str, float]:
    name = f"{run.name}-later-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(untagged_model, run.uri, name, (run.name, run.first))
    listed = run.discovery.scans + 1
    run.discovery.rescan_now()  # a listing that sees the untagged version
    deadline = time.monotonic() + 30
    while run.discovery.scans < listed:
        if time.monotonic() > deadline:
            raise TimeoutError("discovery did not list the registry within 30 s")
        await asyncio.sleep(0.02)
    await run.pause()
    await asyncio.to_thread(tag_model, run.uri, name)
    return f"{name}/1", time.monotonic()


async def measure(run_settings: ModelbusSettings, name: str, first: str, pause_s: float,
                  flows: list[tuple[Flow, int]], label: str) -> list[list[float]]:
    """Latencies of each flow (``count`` changes each) under one discovery."""
    discovery = build_discovery(run_settings)
    times = DiscoveredTimes(run_settings.kafka_bootstrap_servers, run_settings.topics.discovered)
    await discovery.start()
    await times.start()
    run = Run(run_settings.mlflow_tracking_uri, name, first, discovery, pause_s)
    latencies: list[list[float]] = []
    try:
        await times.arrival(f"{name}/{first}", 60)  # the first listing is done
        for flow, count in flows:
            latencies.append([])
            for i in range(count):
                key, returned = await flow(run)
                arrived = await times.arrival(key, 3 * run_settings.poll_interval_s)
                latencies[-1].append(arrived - returned)
                print(f"  {label} {flow.__name__} {i + 1}/{count}: {latencies[-1][-1]:.2f} s",
                      flush=True)
    finally:
        await times.stop()
        await discovery.stop()
    return latencies


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(values):5.2f} {p90:5.2f} {max(values):5.2f}"


async def main(versions: int, tags: int) -> None:
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
            print(f"poll interval {base.poll_interval_s:.0f} s, fast path every "
                  f"{base.recent_poll_interval_s} s; {versions} versions and {tags} tags of "
                  "each kind per way")
            all_flows: list[tuple[Flow, int]] = [
                (version_registered, versions), (tagged_right_after, tags),
                (tagged_once_listed, tags),
            ]

            def prefixed(**update: object) -> ModelbusSettings:
                prefix = f"bench-d-{uuid.uuid4().hex}."
                return base.model_copy(update={"topic_prefix": prefix, **update})

            polling = await measure(prefixed(recent_poll_interval_s=0), name, first,
                                    base.poll_interval_s, all_flows, "polling")
            secret, port = secrets.token_urlsafe(32), free_tcp_port()
            webhook_id = await asyncio.to_thread(
                register_webhook, uri, f"http://127.0.0.1:{port}{WEBHOOK_PATH}", secret)
            hooked = await measure(
                prefixed(recent_poll_interval_s=0, webhook_port=port,
                         webhook_secret=SecretStr(secret)),
                name, first, 1.0, all_flows[:1], "webhooks",
            )
            MlflowClient(uri, uri).delete_webhook(webhook_id)
            fast = await measure(prefixed(), name, first, 1.0, all_flows, "fast path")

    rows = ["new version -> event", "model tag right after it -> event",
            "model tag once listed -> event"]
    print("\nregistry call returned -> discovery event, seconds: median p90 max")
    print(f"{'':<36}{'polling only':<20}{'webhooks + polling':<20}fast path + polling")
    for i, row in enumerate(rows):
        hook = cell(hooked[i]) if i < len(hooked) else "(none: = polling)"
        print(f"{row:<36}{cell(polling[i]):<20}{hook:<20}{cell(fast[i])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=8, help="new versions per way")
    parser.add_argument("--tags", type=int, default=4,
                        help="registered-model tags of each kind per way")
    args = parser.parse_args()
    asyncio.run(main(args.versions, args.tags))
