"""End-to-end benchmark: registry → discovery → catalog → Kafka → worker → model container.

Starts its own broker and MLflow server (free ports, temporary directory), runs the three
services in-process on a private topic prefix and prints, per demo model, discovery latency,
cold starts, the warm 1-row round trip and 10,000-row throughput beside baselines measured
in the same run (see bench/README.md).

    .venv/bin/python bench/end_to_end_bench.py [--quick] [--models molecule,iris]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
from mlflow import MlflowClient

from modelbus.client import AsyncModelbusClient
from modelbus.demo.models import DemoModel, log_iris_model, log_molecule_model
from modelbus.stack import EmbeddedBroker, EmbeddedMlflow, free_tcp_port
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import configure_logging
from modelbus_worker.images.docker_build import docker_client
from modelbus_worker.images.runtime_image import prepare_model
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings

LOGGERS: dict[str, Callable[[MlflowClient], DemoModel]] = {
    "molecule": log_molecule_model, "iris": log_iris_model,
}
VALID_SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
                "CC(C)Cc1ccc(cc1)C(C)C(=O)O"]
POLL_S = 1.0
BIG_ROWS = 10_000
COLD_TIMEOUT_S = 1800.0  # a first use on a fresh machine builds the dependency-set image
LOAD_AND_PREDICT = (
    "import io, sys, mlflow.pyfunc, pandas as pd\n"
    "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
    "m.predict(pd.read_json(io.StringIO(sys.argv[2]), orient='split'))\n"
)


@dataclass
class Reps:
    discovery: int
    cold: int
    single: int
    big: int


@dataclass
class Stack:
    settings: ModelbusSettings
    registry: MlflowClient
    view: CatalogView
    worker: WorkerService
    pool: ContainerPool
    bus: AsyncModelbusClient
    reps: Reps
    image_tags: set[str] = field(default_factory=set)


@dataclass
class Line:
    label: str
    value: float
    base: float
    unit: str
    base_label: str


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def fmt(samples: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in samples)


async def seconds(call: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await call()
    return time.perf_counter() - t0


async def has_key(view: CatalogView, key: str, timeout_s: float) -> bool:
    return await view.wait_until(lambda entries: key in entries, timeout_s)


def rows_of(model: DemoModel, n: int) -> pd.DataFrame:
    frame = model.sample
    if "Molecule" in frame.columns:  # the sample holds an unparsable SMILES on purpose
        frame = pd.DataFrame({"Molecule": VALID_SMILES})
    return frame.iloc[[i % len(frame) for i in range(n)]].reset_index(drop=True)


def new_version(reg: MlflowClient, name: str, of: str) -> str:
    """Another version of the same logged model (tags sit on the registered model)."""
    src = reg.get_model_version(name, of)
    # The REST answer may leave model_id empty; the source is ``models:/<model_id>``.
    model_id = src.model_id or str(src.source).rsplit("/", 1)[-1]
    mv = reg.create_model_version(name, str(src.source), run_id=src.run_id, model_id=model_id)
    return str(mv.version)


def fresh_process_cold_start(uri: str, model: DemoModel) -> float:
    """Seconds for a new Python process to import mlflow, load the version and predict."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    argv = [sys.executable, "-c", LOAD_AND_PREDICT, f"models:/{model.name}/{model.version}",
            model.sample.to_json(orient="split")]
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


async def prepare(s: Stack, name: str, version: str) -> str:
    """Download a version's files and find (or build) its runtime image, as a cold start
    does first; the runtime image is shared by every model with the same requirements."""
    prepared = await asyncio.to_thread(
        prepare_model, s.pool.docker.client, s.pool.settings, name, version,
        s.settings.mlflow_tracking_uri,
    )
    return prepared.image


async def three_paths(
    s: Stack, local: Any, name: str, version: str, frame: pd.DataFrame, warm_up: int, n: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds per call via Kafka, via the pool alone and in-process, interleaved so that
    noise from other processes hits the three paths alike."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for i in range(warm_up + n):
        bus = await seconds(lambda: s.bus.predict(name, table, version, 120.0))
        pool = await seconds(lambda: s.pool.predict(name, version, table))
        t0 = time.perf_counter()
        local.predict(frame)
        if i >= warm_up:
            for samples, value in zip(out, (bus, pool, time.perf_counter() - t0), strict=True):
                samples.append(value)
    return out


async def bench_model(s: Stack, kind: str) -> list[Line]:
    uri, reps = s.settings.mlflow_tracking_uri, s.reps
    model = LOGGERS[kind](s.registry)
    name, v1 = model.name, model.version
    print(f"[{kind}] {name} v{v1} registered; waiting for the catalog ...", flush=True)
    if not await has_key(s.worker.catalog, f"{name}/{v1}", 60):
        raise RuntimeError(f"{name}/{v1} not in the worker's catalog after 60 s")
    first = await seconds(lambda: s.bus.predict(name, model.sample, v1, COLD_TIMEOUT_S))
    print(f"[{kind}] first request of v1 (images built if missing): {first:.1f} s", flush=True)

    # 1. discovery → catalog; the versions made here are the never-served ones of step 2.
    latencies, fresh = [], []
    for _ in range(reps.discovery):
        # Registering right after a catalog update would always land just after a poll.
        await asyncio.sleep(random.uniform(0, POLL_S))
        version = new_version(s.registry, name, v1)
        t0 = time.perf_counter()
        if not await has_key(s.view, f"{name}/{version}", 30):
            raise RuntimeError(f"{name}/{version} not in the catalog after 30 s")
        latencies.append(time.perf_counter() - t0)
        fresh.append(version)
    await s.worker.catalog.wait_until(lambda e: all(f"{name}/{v}" in e for v in fresh), 30)
    print(f"[{kind}] discovery latencies: {fmt(latencies)} s", flush=True)

    # 2. cold starts through Kafka, alternating (a) files and runtime image prepared first
    # and (b) nothing prepared; both are handed to a standby runtime when one is ready.
    cold_cached: list[float] = []
    cold_built: list[float] = []
    image_build: list[float] = []
    for i in range(2 * reps.cold):
        version = fresh[i]
        if i % 2 == 0:
            image_build.append(await seconds(partial(prepare, s, name, version)))
        elapsed = await seconds(partial(s.bus.predict, name, model.sample, version,
                                        COLD_TIMEOUT_S))
        (cold_cached if i % 2 == 0 else cold_built).append(elapsed)
    in_proc_cold = [await asyncio.to_thread(fresh_process_cold_start, uri, model)
                    for _ in range(reps.cold)]
    print(f"[{kind}] cold starts: (a) {fmt(cold_cached)} (b) {fmt(cold_built)} s, preparing "
          f"files and image {fmt(image_build)} s, fresh process {fmt(in_proc_cold)} s",
          flush=True)

    # 3. and 4.: warm 1-row round trips and one 10,000-row request, in-process beside them.
    local = mlflow.pyfunc.load_model(f"models:/{name}/{v1}")
    bus_1, pool_1, local_1 = await three_paths(s, local, name, v1, rows_of(model, 1),
                                               20, reps.single)
    bus_big, pool_big, local_big = await three_paths(s, local, name, v1,
                                                     rows_of(model, BIG_ROWS), 0, reps.big)

    med = statistics.median
    cold_base = med(in_proc_cold)
    fresh_label = "fresh python: load+predict"
    (b50, b99), (p50, p99), (l50, l99) = p50_p99(bus_1), p50_p99(pool_1), p50_p99(local_1)
    ms = 1e3
    return [
        Line(f"discovery→catalog, median of {len(latencies)}", med(latencies), POLL_S, "s",
             "poll interval (config)"),
        Line("discovery→catalog, max", max(latencies), POLL_S, "s", "poll interval (config)"),
        Line(f"cold (a) files and image prepared, n={len(cold_cached)}", med(cold_cached),
             cold_base, "s", fresh_label),
        Line(f"cold (b) nothing prepared, n={len(cold_built)}", med(cold_built),
             cold_base, "s", fresh_label),
        Line("  preparing alone (before each (a))", med(image_build), cold_base, "s",
             fresh_label),
        Line(f"1 row via Kafka, median (n={len(bus_1)})", b50 * ms, l50 * ms, "ms",
             "in-process predict"),
        Line("1 row via Kafka, p99", b99 * ms, l99 * ms, "ms", "in-process predict"),
        Line("1 row pool only, median", p50 * ms, l50 * ms, "ms", "in-process predict"),
        Line("1 row pool only, p99", p99 * ms, l99 * ms, "ms", "in-process predict"),
        Line("1 row Kafka share (Kafka - pool), median", (b50 - p50) * ms, b50 * ms, "ms",
             "Kafka median"),
        Line(f"10,000 rows via Kafka, rows/s (n={reps.big})", BIG_ROWS / med(bus_big),
             BIG_ROWS / med(local_big), "r/s", "in-process predict"),
        Line("10,000 rows pool only, rows/s", BIG_ROWS / med(pool_big),
             BIG_ROWS / med(local_big), "r/s", "in-process predict"),
    ]


def print_environment(args: argparse.Namespace) -> None:
    import docker

    engine = docker.from_env().version().get("Version", "?")
    versions = ", ".join(f"{p} {dist_version(p)}" for p in
                         ("mlflow", "pyarrow", "aiokafka", "pandas", "rdkit", "scikit-learn"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"machine: nproc={os.cpu_count()} {platform.platform()}; python "
          f"{platform.python_version()}; docker engine {engine}; modelbus {commit or '?'}")
    print(f"versions: {versions}")
    print(f"rerun: .venv/bin/python bench/end_to_end_bench.py"
          f"{' --quick' if args.quick else ''} --models {args.models}", flush=True)


def print_table(kind: str, lines: list[Line]) -> None:
    print(f"\n== {kind}")
    print(f"{'measure':<44}{'modelbus':>18}{'baseline':>18}{'ratio':>9}  baseline is")
    for ln in lines:
        ratio = ln.value / ln.base if ln.base else float("nan")
        print(f"{ln.label:<44}{ln.value:>14,.2f} {ln.unit:<3}{ln.base:>14,.2f} {ln.unit:<3}"
              f"{ratio:>8.2f}x  {ln.base_label}")


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, list[Line]]:
    reps = Reps(3, 1, 50, 2) if args.quick else Reps(6, 3, 300, 5)
    broker = EmbeddedBroker(free_tcp_port(), tmp / "kafka")
    server = EmbeddedMlflow(free_tcp_port(), tmp / "mlflow")
    results: dict[str, list[Line]] = {}
    broker.start()
    try:
        server.start()
        settings = ModelbusSettings().model_copy(update={
            "kafka_bootstrap_servers": broker.bootstrap_servers,
            "mlflow_tracking_uri": server.tracking_uri,
            "topic_prefix": f"bench-{uuid.uuid4().hex[:10]}.",
            "poll_interval_s": POLL_S,
        })
        mlflow.set_tracking_uri(server.tracking_uri)
        mlflow.set_experiment("bench")
        registry = MlflowClient(server.tracking_uri, registry_uri=server.tracking_uri)
        pool = ContainerPool(ContainerSettings(), docker_client(), server.tracking_uri)
        discovery, catalog = build_discovery(settings), build_catalog(settings)
        worker = build_worker(settings, pool)
        view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
        bus = AsyncModelbusClient(settings=settings)
        stack = Stack(settings, registry, view, worker, pool, bus, reps)
        try:
            for service in (discovery, catalog, worker, view, bus):
                await service.start()
            for kind in args.models.split(","):
                results[kind] = await bench_model(stack, kind)
        finally:
            for stop in (bus.close, view.stop, worker.stop, catalog.stop, discovery.stop):
                await stop()  # worker.stop closes the pool: its containers are removed
            for tag in stack.image_tags:
                try:
                    pool.docker.client.images.remove(tag)
                except Exception as exc:  # still cleaning the rest
                    print(f"could not remove image {tag}: {exc}", file=sys.stderr)
    finally:
        server.stop()
        broker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--models", default="molecule,iris", help="molecule, iris or both")
    args = parser.parse_args()
    unknown = set(args.models.split(",")) - set(LOGGERS)
    if unknown:
        parser.error(f"unknown models: {sorted(unknown)}")
    configure_logging("WARNING")
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    print_environment(args)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mb-e2e-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    for kind, lines in results.items():
        print_table(kind, lines)
    print("\ncold (c), dependency-set image not cached: not measured — that image is shared "
          "with other users of this Docker engine and the bench does not delete it.")
    print(f"total bench time {time.monotonic() - started:.0f} s; medians throughout; "
          f"CPU numbers are noisy on a shared machine.")


if __name__ == "__main__":
    main()
