"""Readiness bench (issue 23): tag → catalog entry → prepared → first request, beside the
same first request with preparation off, and what preparation costs in disk and CPU.

Starts a broker and an MLflow server (free ports, temporary directory), discovery and
catalog in-process at the default poll interval (the fast path is what sees a tag), and a
worker with policy ``latest`` whose cache directory starts empty (uv's wheel cache lives in
it). Every measured model is a scikit-learn model logged with ``mlflow.sklearn`` (the
requirements MLflow writes for it: mlflow, numpy, pandas, scikit-learn, scipy, skops) plus
a tiny wheel made for it in a ``--find-links`` directory, so that its dependency set is
new and its images are built. In order:

1. a model with a cold wheel cache, then ``--warm N`` models with the cache kept: the
   ``datagrok`` tag set on the registered model → its catalog entry; entry → ``serving``
   ``prepared``; the first one-row ``predict`` after that;
2. a new version of the last of them (its dependency set built): entry → prepared, first
   request;
3. the worker stopped, one with policy ``none`` (today's behaviour) on the same cache:
   ``--today N`` new models (new dependency set, warm wheels) and a new version of the
   last, each timed from the tag to its entry and by its first request, which builds.

Beside the timings: the stages of each start (from the worker's own log lines), the CPU of
each preparation (the worker's image threads, its uv/tar children and the containers run
from the set's images, sampled from their cgroups; the whole process and dockerd +
containerd raw, beside their idle rates), the disk it leaves (the version's files, the
dependency-set and runtime images' own layers, uv's cache) and, from those, the cost of
policies ``latest`` and ``all`` for a registry of 100 versions. The bench's images are
removed at the end (the base image is kept). Needs Docker and the package index.

    .venv/bin/python bench/readiness_bench.py            # 3 warm, 3 today: ~6 minutes
    .venv/bin/python bench/readiness_bench.py --quick    # 1 warm, 1 today: ~4 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import docker
import mlflow
import pandas as pd
import structlog

# discovery_latency_bench and throughput_bench: the bench directory is on sys.path when
# this file is run as a script.
from discovery_latency_bench import tag_model
from mlflow.models import infer_signature
from pydantic import SecretStr
from throughput_bench import new_version, start_servers

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.messages import FAILED, PREPARED, CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import configure_logging
from modelbus_worker.images.base import base_tag
from modelbus_worker.images.interpreter import default_interpreter
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.preparation.plan import Ownership, wanted_versions
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the test suite's wheel maker
BUILD_TIMEOUT_S = 1800.0
ENTRY_TIMEOUT_S = 60.0
VIEW_FETCH_WAIT_MS = 20  # the bench's catalog view: its resolution
IDLE_S = 5.0  # the idle CPU rate is measured over this long
SAMPLE = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, -1.0, 2.0, 0.0]})
ROW = pd.DataFrame({"a": [3.0], "b": [1.5]})  # y = 2a + b = 7.5
STAGE_EVENTS = ("container_started", "preparation_done", "depset_image_built",
                "runtime_image_built")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct/docker"), Path("/sys/fs/cgroup/cpu,cpuacct/docker"),
                Path("/sys/fs/cgroup/docker"), Path("/sys/fs/cgroup/system.slice"))
CGROUP_SAMPLE_S = 0.2
IMAGE_THREADS = "modelbus-images"  # the name prefix of the container pool's image threads
SHAPES = {"10 models x 10 versions (a set per model)": (10, 10),
          "100 models x 1 version (a set each)": (100, 1)}


# ---------------------------------------------------------------- models

def sklearn_requirements() -> list[str]:
    """What MLflow writes for a scikit-learn model (skops format), pinned to this venv."""
    return [f"{name}=={dist_version(name)}" for name in (
        "mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")]


def new_wheel(wheels: Path) -> str:
    """A requirement on a wheel made now in the find-links directory: a new dependency set."""
    from tests.support.private_index import build_wheel

    name = f"ready-{uuid.uuid4().hex[:10]}"
    build_wheel(wheels, name, "1.0", {f"{name.replace('-', '_')}/__init__.py": "OFFSET = 0\n"})
    return f"{name}==1.0"


def log_sklearn_model(uri: str, name: str, requirements: list[str]) -> None:
    """A linear regression y = 2a + b, registered as ``name`` (version 1), untagged."""
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(uri)
    model = LinearRegression().fit(SAMPLE, 2 * SAMPLE["a"] + SAMPLE["b"])
    with mlflow.start_run(run_name=name):
        mlflow.sklearn.log_model(
            model, name="model", pip_requirements=requirements,
            signature=infer_signature(SAMPLE, model.predict(SAMPLE)),
            registered_model_name=name,
        )


# ---------------------------------------------------------------- what is observed

class CatalogTimes:
    """When each catalog key first appeared, and first showed each serving state."""

    def __init__(self, settings: ModelbusSettings) -> None:
        self._view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog,
                                 VIEW_FETCH_WAIT_MS)
        self.seen: dict[str, float] = {}
        self.states: dict[tuple[str, str], tuple[float, CatalogEntry]] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        changes = self._view.changes()
        await self._view.start()
        self._task = asyncio.create_task(self._record(changes))

    async def _record(self, changes: Any) -> None:
        async for change in changes:
            now, entry = time.monotonic(), change.entry
            if entry is None:
                continue
            self.seen.setdefault(change.key, now)
            if entry.serving is not None:
                self.states.setdefault((change.key, entry.serving.state), (now, entry))
            async with self._changed:
                self._changed.notify_all()

    async def entry(self, key: str) -> float:
        """When ``key`` appeared (waiting up to ``ENTRY_TIMEOUT_S``)."""
        async with asyncio.timeout(ENTRY_TIMEOUT_S), self._changed:
            await self._changed.wait_for(lambda: key in self.seen)
        return self.seen[key]

    async def prepared(self, key: str) -> float:
        """When ``key`` showed ``prepared``; raises if it showed ``failed`` first."""
        async with asyncio.timeout(BUILD_TIMEOUT_S), self._changed:
            await self._changed.wait_for(
                lambda: (key, PREPARED) in self.states or (key, FAILED) in self.states)
        if (key, FAILED) in self.states:
            serving = self.states[key, FAILED][1].serving
            raise RuntimeError(f"{key} failed: {serving.error_message if serving else '?'}")
        return self.states[key, PREPARED][0]

    async def stop(self) -> None:
        await self._view.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StageLog:
    """The worker's own timings: the log lines of ``STAGE_EVENTS``, kept with their time;
    info lines are not printed (warnings and errors are)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []

    def install(self) -> None:
        configure_logging("INFO")
        logging.getLogger().setLevel(logging.WARNING)  # libraries' info lines
        # mlflow warns that the bench's wheels are not installed here: they are not meant to be
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        processors = structlog.get_config()["processors"]
        structlog.configure(processors=[self._capture, *processors])

    def _capture(self, logger: Any, method: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") in STAGE_EVENTS:
            self.events.append((time.monotonic(), dict(event)))
        if method in ("debug", "info"):
            raise structlog.DropEvent
        return event

    def between(self, start: float, end: float) -> dict[str, dict[str, Any]]:
        """The last line of each event logged from ``start`` to ``end``."""
        return {e["event"]: e for t, e in self.events if start <= t <= end}


@dataclass(frozen=True)
class Usage:
    """CPU seconds consumed so far (and the wall clock), by whom."""

    wall: float
    process: float  # this process: worker, discovery, catalog, client (all threads)
    images: float  # the worker's image threads: files, build contexts, build calls
    children: float  # child processes that ended: uv, tar
    engine: float  # dockerd and containerd: image builds, layer commits (and other users')

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.wall - other.wall, self.process - other.process,
                     self.images - other.images, self.children - other.children,
                     self.engine - other.engine)

    def idle_share(self, idle: Usage) -> Usage:
        """What the idle rates of ``idle`` would have consumed over this wall time."""
        scale = self.wall / idle.wall
        return Usage(self.wall, idle.process * scale, 0.0, 0.0, idle.engine * scale)


def engine_pids() -> list[int]:
    """dockerd and containerd, when this machine runs them (nothing on a remote engine)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() in ("dockerd", "containerd"):
                pids.append(int(comm.parent.name))
    return pids


def cpu_s(stat: str) -> float:
    """utime + stime of the process or thread whose ``/proc/.../stat`` this is (0: gone)."""
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def image_threads_cpu_s() -> float:
    """CPU of the container pools' image threads (they live as long as their pool)."""
    return sum(cpu_s(f"/proc/self/task/{t.native_id}/stat") for t in threading.enumerate()
               if t.name.startswith(IMAGE_THREADS) and t.native_id is not None)


def take_usage(engine: list[int]) -> Usage:
    times = os.times()
    return Usage(time.monotonic(), time.process_time(), image_threads_cpu_s(),
                 times.children_user + times.children_system,
                 sum(cpu_s(f"/proc/{pid}/stat") for pid in engine))


def container_cgroups() -> Iterator[tuple[str, float]]:
    """(container id, CPU seconds) of every running container, from its cgroup."""
    for root in CGROUP_ROOTS:
        if not root.is_dir():
            continue
        for group in root.iterdir():
            cid = group.name.removeprefix("docker-").removesuffix(".scope")
            if len(cid) != 64:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                v1 = group / "cpuacct.usage"
                if v1.exists():
                    yield cid, int(v1.read_text()) / 1e9
                else:
                    stat = (group / "cpu.stat").read_text().split()
                    yield cid, int(stat[stat.index("usage_usec") + 1]) / 1e6
        return


class ContainerCpu:
    """The CPU of each container, sampled from its cgroup while it runs (a build step's
    container is gone when its step ends: the last sample counts), and its image."""

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        self._image: dict[str, str] = {}
        self._lock = threading.Lock()
        self._docker = docker.from_env()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="cpu-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._docker.close()

    def _sample(self) -> None:
        while not self._stop.wait(CGROUP_SAMPLE_S):
            for cid, seconds in container_cgroups():
                if cid not in self._image:
                    self._image[cid] = self._image_of(cid)
                with self._lock:
                    self._used[cid] = seconds

    def _image_of(self, cid: str) -> str:
        try:
            return str(self._docker.api.inspect_container(cid)["Image"])
        except docker.errors.DockerException:
            return ""

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._used)

    def used(self, before: dict[str, float], after: dict[str, float],
             images: set[str]) -> float:
        """CPU from ``before`` to ``after`` of the containers run from ``images``."""
        return sum(seconds - before.get(cid, 0.0) for cid, seconds in after.items()
                   if self._image.get(cid) in images)


def bench_images(client: Any, runtime: str, base: str) -> set[str]:
    """Ids of the runtime image and of every build step of its dependency-set image above
    the base: the images that the containers of that set's builds and models run."""
    image = client.images.get(runtime)
    depset = client.images.get(image.labels["modelbus.depset"])
    below = {h["Id"] for h in client.images.get(base).history()}
    return ({image.id} | {h["Id"] for h in depset.history()}) - below - {"<missing>"}


def disk_bytes(path: Path) -> int:
    """Blocks allocated under ``path``, each hard-linked file once (as ``du``)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def own_layers(client: Any, runtime: str, base: str) -> tuple[int, int]:
    """Bytes the dependency-set image adds to the base, and the runtime image to that."""
    image = client.images.get(runtime)
    depset = client.images.get(image.labels["modelbus.depset"])
    base_size = int(client.images.get(base).attrs["Size"])
    return (int(depset.attrs["Size"]) - base_size,
            int(image.attrs["Size"]) - int(depset.attrs["Size"]))


def container_memory(client: Any, container_id: str) -> int | None:
    """A container's memory in use, page cache excluded (as ``docker stats``)."""
    memory = client.containers.get(container_id).stats(stream=False).get("memory_stats", {})
    if "usage" not in memory:
        return None
    inner = memory.get("stats", {})
    cache = inner.get("total_inactive_file", inner.get("inactive_file", inner.get("cache", 0)))
    return int(memory["usage"]) - int(cache)


# ---------------------------------------------------------------- the measurements

@dataclass(frozen=True)
class Mark:
    """What is counted at the start and the end of a measured window."""

    usage: Usage
    containers: dict[str, float]
    uv_bytes: int
    files: frozenset[str]  # the worker's cached model versions


@dataclass
class Readiness:
    """One model version, from becoming visible to its first answer."""

    label: str
    key: str
    visible_s: float  # tag (or new version) returned → catalog entry
    prepared_s: float | None  # entry → prepared (None: policy none)
    first_s: float  # first one-row request
    begin: Mark  # tag → prepared (policy latest), or the first request (policy none)
    end: Mark
    warm: bool = False  # a warm container waited for the first request
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    container_cpu: float = 0.0  # the set's build steps and its model containers
    files_bytes: int = 0
    depset_own: int = 0
    runtime_own: int = 0
    memory: int | None = None

    @property
    def usage(self) -> Usage:
        return self.end.usage - self.begin.usage

    @property
    def uv_growth(self) -> int:
        return self.end.uv_bytes - self.begin.uv_bytes

    @property
    def cpu(self) -> float:
        """The worker's image threads, its children and the set's containers."""
        return self.usage.images + self.usage.children + self.container_cpu


@dataclass
class Bench:
    """The running stack, and what the measurements share."""

    settings: ModelbusSettings
    wheels: Path
    cache: ContainerSettings
    client: AsyncModelbusClient
    times: CatalogTimes
    log: StageLog
    docker: Any
    sampler: ContainerCpu
    engine: list[int]
    pool: ContainerPool | None = None
    runtimes: set[str] = field(default_factory=set)

    @property
    def uri(self) -> str:
        return self.settings.mlflow_tracking_uri

    def mark(self) -> Mark:
        root = self.cache.model_cache_root
        files = frozenset(p.name for p in root.iterdir()) if root.is_dir() else frozenset()
        return Mark(take_usage(self.engine), self.sampler.snapshot(),
                    disk_bytes(self.cache.cache_dir / "uv"), files)

    async def new_model(self, label: str) -> str:
        name = f"{label}-{uuid.uuid4().hex[:6]}"
        requirements = [*sklearn_requirements(), new_wheel(self.wheels)]
        await asyncio.to_thread(log_sklearn_model, self.uri, name, requirements)
        return name

    async def first_request(self, key: str) -> float:
        """Seconds of one-row ``predict`` of ``key`` (checked: y = 2a + b)."""
        name, version = key.rsplit("/", 1)
        began = time.monotonic()
        answer = await self.client.predict(name, ROW, version=version, wait=BUILD_TIMEOUT_S)
        seconds = time.monotonic() - began
        y = answer.column(0).to_pylist()
        if len(y) != 1 or abs(float(y[0]) - 7.5) > 1e-6:
            raise RuntimeError(f"{key} answered {y}, not [7.5]")
        return seconds

    async def finish(self, r: Readiness) -> Readiness:
        """Stages, files, images, CPU of the set's containers, memory of the version's."""
        r.stages = self.log.between(r.begin.usage.wall, time.monotonic())
        root = self.cache.model_cache_root
        r.files_bytes = sum(disk_bytes(p) for p in root.iterdir() if p.name not in r.begin.files)
        runtime = r.stages.get("container_started", {}).get("image")
        if runtime:
            self.runtimes.add(runtime)
            base = base_tag(default_interpreter(self.cache))
            r.depset_own, r.runtime_own = await asyncio.to_thread(
                own_layers, self.docker, runtime, base)
            images = await asyncio.to_thread(bench_images, self.docker, runtime, base)
            r.container_cpu = self.sampler.used(r.begin.containers, r.end.containers, images)
        container = (self.pool.running() if self.pool else {}).get(r.key)
        if container:
            r.memory = await asyncio.to_thread(container_memory, self.docker, container)
        return r


async def prepared_flow(bench: Bench, label: str) -> Readiness:
    """A new model (new dependency set): tag → entry → prepared → first request."""
    name = await bench.new_model(label)
    begin = bench.mark()
    await asyncio.to_thread(tag_model, bench.uri, name)
    return await _prepared(bench, label, f"{name}/1", time.monotonic(), begin)


async def prepared_version_flow(bench: Bench, label: str, of: str) -> Readiness:
    """A new version of model ``of`` (its dependency set built): entry → prepared → first."""
    begin = bench.mark()
    version = await asyncio.to_thread(new_version, bench.uri, of, "1")
    return await _prepared(bench, label, f"{of}/{version}", time.monotonic(), begin)


async def _prepared(bench: Bench, label: str, key: str, since: float, begin: Mark) -> Readiness:
    entry_at = await bench.times.entry(key)
    prepared_at = await bench.times.prepared(key)
    end = bench.mark()
    warm = bench.pool is not None and bench.pool.ready(*key.rsplit("/", 1))
    first = await bench.first_request(key)
    r = Readiness(label, key, entry_at - since, prepared_at - entry_at, first, begin, end, warm)
    print(f"  {label} {key}: visible {r.visible_s:.2f} s, prepared {r.prepared_s:.1f} s "
          f"later, first request {r.first_s:.3f} s", flush=True)
    return await bench.finish(r)


async def today_flow(bench: Bench, label: str, of: str | None = None) -> Readiness:
    """Policy none: a new model (or a new version of ``of``) → entry; its first request."""
    if of is None:
        name = await bench.new_model(label)
        await asyncio.to_thread(tag_model, bench.uri, name)
        key = f"{name}/1"
    else:
        key = f"{of}/{await asyncio.to_thread(new_version, bench.uri, of, '1')}"
    since = time.monotonic()
    entry_at = await bench.times.entry(key)
    begin = bench.mark()
    first = await bench.first_request(key)
    r = Readiness(label, key, entry_at - since, None, first, begin, bench.mark())
    print(f"  {label} {key}: visible {r.visible_s:.2f} s, first request {r.first_s:.1f} s",
          flush=True)
    return await bench.finish(r)


async def start_worker(bench: Bench, policy: str, max_containers: int) -> WorkerService:
    settings = bench.settings.model_copy(
        update={"worker_prepare": policy, "worker_id": f"bench-{policy}"})
    bench.pool = ContainerPool(
        bench.cache.model_copy(update={"max_containers": max_containers}),
        bench.docker, bench.uri)
    worker = build_worker(settings, bench.pool)  # stop() closes it
    await worker.start()
    deadline = time.monotonic() + 60
    while not worker.runtime.assigned():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker was assigned no partition within 60 s")
        await asyncio.sleep(0.1)
    return worker


async def idle_usage(engine: list[int]) -> Usage:
    before = take_usage(engine)
    await asyncio.sleep(IDLE_S)
    return take_usage(engine) - before


@dataclass
class Results:
    prepared: list[Readiness] = field(default_factory=list)
    today: list[Readiness] = field(default_factory=list)
    idle: Usage | None = None
    uv_cold: int = 0
    base_bytes: int = 0
    max_containers: int = 0
    settings: ModelbusSettings | None = None


async def run(args: argparse.Namespace, tmp: Path, res: Results) -> None:
    log = StageLog()
    log.install()
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-ready-{uuid.uuid4().hex[:8]}.",
                                 poll_interval_s=ModelbusSettings().poll_interval_s)
        res.settings = settings
        for service in (build_discovery(settings), build_catalog(settings)):
            await service.start()
            stack.push_async_callback(service.stop)
        wheels = tmp / "wheels"
        wheels.mkdir()
        cache = ContainerSettings(cache_dir=tmp / "worker-cache",
                                  pip=PipIndexSettings(find_links=SecretStr(str(wheels))))
        client = await stack.enter_async_context(AsyncModelbusClient(settings=settings))
        times = CatalogTimes(settings)
        await times.start()
        stack.push_async_callback(times.stop)
        sampler = ContainerCpu()
        sampler.start()
        stack.callback(sampler.stop)
        bench = Bench(settings, wheels, cache, client, times, log, docker.from_env(),
                      sampler, engine_pids())
        stack.callback(remove_images, bench)
        res.base_bytes = int(bench.docker.images.get(
            base_tag(default_interpreter(cache))).attrs["Size"])
        await measure_prepared(bench, args, res)
        await measure_today(bench, args, res)


async def measure_prepared(bench: Bench, args: argparse.Namespace, res: Results) -> None:
    res.max_containers = max(ContainerSettings().max_containers, args.warm + 2)
    worker = await start_worker(bench, "latest", res.max_containers)
    try:
        res.idle = await idle_usage(bench.engine)
        print(f"policy latest, max_containers {res.max_containers}; idle CPU: bench process "
              f"{res.idle.process / res.idle.wall:.2f}, dockerd + containerd "
              f"{res.idle.engine / res.idle.wall:.2f} cores", flush=True)
        res.prepared.append(await prepared_flow(bench, "cold"))
        res.uv_cold = res.prepared[-1].uv_growth
        for i in range(args.warm):
            res.prepared.append(await prepared_flow(bench, f"warm{i + 1}"))
        of = res.prepared[-1].key.split("/")[0]
        res.prepared.append(await prepared_version_flow(bench, "version", of))
    finally:
        await worker.stop()


async def measure_today(bench: Bench, args: argparse.Namespace, res: Results) -> None:
    worker = await start_worker(bench, "none", ContainerSettings().max_containers)
    print("policy none (today's behaviour), the same cache", flush=True)
    try:
        for i in range(args.today):
            res.today.append(await today_flow(bench, f"today{i + 1}"))
        of = res.today[-1].key.split("/")[0]
        res.today.append(await today_flow(bench, "today-version", of))
    finally:
        await worker.stop()


def remove_images(bench: Bench) -> None:
    """The runtime and dependency-set images of the bench's models: no one else has them."""
    for runtime in sorted(bench.runtimes):
        try:
            depset = bench.docker.images.get(runtime).labels.get("modelbus.depset")
            bench.docker.images.remove(runtime)
            if depset:
                bench.docker.images.remove(depset)
        except docker.errors.DockerException as exc:
            print(f"image {runtime} not removed: {exc}")


# ---------------------------------------------------------------- printing

def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def secs(values: list[float], digits: int = 2) -> str:
    if not values:
        return "—"
    text = f"{med(values):.{digits}f} s"
    return text if len(values) == 1 else f"{text} (n={len(values)}, max {max(values):.{digits}f})"


def size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e5 \
        else f"{n / 1e3:.0f} kB"


def of_label(rows: list[Readiness], *labels: str) -> list[Readiness]:
    return [r for r in rows if r.label.rstrip("0123456789") in labels]


def print_headline(res: Results) -> None:
    p, t = res.prepared, res.today
    cold, warm, ver = of_label(p, "cold"), of_label(p, "warm"), of_label(p, "version")
    new_today, ver_today = of_label(t, "today"), of_label(t, "today-version")
    tagged = [*cold, *warm]
    print("\n| figure | goal | measured (policy `latest`) | today (policy `none`) |")
    print("|---|---|---|---|")
    print(f"| tag on the registered model → catalog entry | ≤ 2 s | "
          f"{secs([r.visible_s for r in tagged])} | {secs([r.visible_s for r in new_today])} |")
    print(f"| catalog entry → prepared, new dependency set, cold wheel cache | — | "
          f"{secs([r.prepared_s or 0 for r in cold], 1)} | not prepared |")
    print(f"| catalog entry → prepared, new dependency set, warm wheel cache | ≤ 30 s | "
          f"{secs([r.prepared_s or 0 for r in warm], 1)} | not prepared |")
    print(f"| first request, new dependency set (warm wheels for today) | ≤ 1 s after "
          f"prepared; today's figure (issue: 35.8 s) | "
          f"{secs([r.first_s for r in tagged], 3)} | {secs([r.first_s for r in new_today], 1)} |")
    print(f"| new version, dependency set built: entry → prepared | — | "
          f"{secs([r.prepared_s or 0 for r in ver], 1)} | not prepared |")
    print(f"| new version, dependency set built: first request | ≤ 1 s; today's figure "
          f"(issue: 2.2-2.8 s) | {secs([r.first_s for r in ver], 3)} | "
          f"{secs([r.first_s for r in ver_today], 2)} |")
    print(f"| new version → catalog entry | ≤ 2 s | {secs([r.visible_s for r in ver])} | "
          f"{secs([r.visible_s for r in ver_today])} |")


def stage(r: Readiness, event: str, *fields: str) -> str:
    line = r.stages.get(event, {})
    found = [float(line[f]) for f in fields if line.get(f) is not None]
    return f"{sum(found):.1f}" if found else "—"


def print_stages(res: Results) -> None:
    print("\nwhere a start's seconds went (the worker's log lines; `—`: not done, e.g. "
          "images cached):")
    print("| model | trigger | files | uv install | depset image | runtime image | images "
          "in all | container | load | start total | preparation_done | warm at 1st request |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in [*res.prepared, *res.today]:
        trigger = "request" if r.prepared_s is None else "preparation"
        warm = "—" if r.prepared_s is None else ("yes" if r.warm else "no")
        print(f"| {r.label} | {trigger} | "
              f"{stage(r, 'container_started', 'lookup_s', 'download_s')} | "
              f"{stage(r, 'depset_image_built', 'wheels_s')} | "
              f"{stage(r, 'depset_image_built', 'build_s')} | "
              f"{stage(r, 'runtime_image_built', 'seconds')} | "
              f"{stage(r, 'container_started', 'depset_s')} | "
              f"{stage(r, 'container_started', 'container_s', 'link_s')} | "
              f"{stage(r, 'container_started', 'load_s')} | "
              f"{stage(r, 'container_started', 'total_s')} | "
              f"{stage(r, 'preparation_done', 'seconds')} | {warm} |")


def print_cpu(res: Results) -> None:
    assert res.idle is not None
    print("\nCPU seconds of each preparation (tag → prepared) or first request (policy none): "
          "the worker's image threads (files, build contexts), its children (uv, tar) and the "
          "containers run from the set's images (build steps, model and standby containers, "
          "sampled from their cgroups) make the total. The whole bench process (its Kafka "
          "polling included) and dockerd + containerd (which serve every user of the engine) "
          "are shown raw, beside what their idle rates would have used meanwhile:")
    print("| model | wall s | image threads | uv, tar | the set's containers | total CPU s | "
          "bench process (idle rate's share) | dockerd + containerd (idle rate's share) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in [*res.prepared, *res.today]:
        u, share = r.usage, r.usage.idle_share(res.idle)
        print(f"| {r.label} | {u.wall:.1f} | {u.images:.1f} | {u.children:.1f} | "
              f"{r.container_cpu:.1f} | {r.cpu:.1f} | {u.process:.1f} ({share.process:.1f}) | "
              f"{u.engine:.1f} ({share.engine:.1f}) |")


@dataclass(frozen=True)
class Costs:
    """Medians of what one version and one dependency set cost."""

    files: float
    depset: float  # the dependency-set and runtime images' own layers
    cpu_new: float  # preparing a version whose dependency set is new (warm wheels)
    cpu_same: float  # preparing a version whose dependency set is built
    cpu_cold: float
    wall_new: float
    wall_same: float
    memory: float


def costs(res: Results) -> Costs:
    def cpu(rows: list[Readiness]) -> float:
        return med([r.cpu for r in rows])

    def wall(rows: list[Readiness]) -> float:
        return med([r.prepared_s or 0.0 for r in rows])

    new, same = of_label(res.prepared, "warm"), of_label(res.prepared, "version")
    return Costs(
        files=med([r.files_bytes for r in res.prepared]),
        depset=med([r.depset_own + r.runtime_own for r in [*res.prepared, *res.today]
                    if r.depset_own]),
        cpu_new=cpu(new), cpu_same=cpu(same), cpu_cold=cpu(of_label(res.prepared, "cold")),
        wall_new=wall(new), wall_same=wall(same),
        memory=med([r.memory for r in res.prepared if r.memory is not None]),
    )


def print_disk(res: Results, c: Costs) -> None:
    depsets = [r for r in [*res.prepared, *res.today] if r.depset_own]
    print("\ndisk and memory (decimal units):")
    print("| what | size | one per |")
    print("|---|---|---|")
    print(f"| model files in the worker's cache | {size(c.files)} | version |")
    print(f"| dependency-set image, own layers (the venv) | "
          f"{size(med([r.depset_own for r in depsets]))} | dependency set |")
    print(f"| runtime image, own layers | {size(med([r.runtime_own for r in depsets]))} | "
          f"dependency set |")
    print(f"| base image | {size(res.base_bytes)} | host (every set is built on it) |")
    grown = med([r.uv_growth for r in of_label(res.prepared, "warm")])
    print(f"| uv's cache after the cold set | {size(res.uv_cold)} | host (shared by every "
          f"set); a later new set added {size(grown)} |")
    print(f"| a warm container's memory | {size(c.memory)} | prepared version, up to "
          f"max_containers (default {ContainerSettings().max_containers}); the rest get a "
          f"standby runtime |")


def print_hundred(res: Results, c: Costs) -> None:
    assert res.settings is not None
    cap = res.settings.worker_prepare_max_versions
    print(f"\na registry of 100 versions, all of whose requests one worker consumes, from the "
          f"medians above: {size(c.files)} of files per version and {size(c.depset)} of images "
          f"per new dependency set; CPU {c.cpu_new:.0f} s and {c.wall_new:.0f} s of wall per "
          f"version with a new set (warm wheels; the host's first set: {c.cpu_cold:.0f} s), "
          f"{c.cpu_same:.1f} s and {c.wall_same:.1f} s per version of a set already built "
          f"(dockerd's share not included). Once per host, not in the disk column: uv's cache "
          f"{size(res.uv_cold)}, the base image {size(res.base_bytes)}.")
    print("| registry | policy | cap | versions prepared | sets built | disk | CPU | wall, "
          "one at a time |")
    print("|---|---|---|---|---|---|---|---|")
    for shape, (models, versions) in SHAPES.items():
        for policy, limit in (("latest", cap), ("all", cap), ("all", 100)):
            n, sets = planned(models, versions, policy, limit)
            disk = n * c.files + sets * c.depset
            cpu = sets * c.cpu_new + (n - sets) * c.cpu_same
            wall = sets * c.wall_new + (n - sets) * c.wall_same
            print(f"| {shape} | {policy} | {limit} | {n} | {sets} | {size(disk)} | "
                  f"{cpu / 60:.1f} min | {wall / 60:.0f} min |")
    print(f"The cap (worker_prepare_max_versions, default {cap}) is per worker: it bounds the "
          "versions one worker wants at a time (the newest of each model first), so the disk "
          "and CPU of one burst. It does not bound history: versions prepared earlier stay "
          "prepared, and their files and images stay until `modelbus images prune` or the "
          "image budget (MODELBUS_WORKER_IMAGE_BUDGET, unset by default) removes them.")


def planned(models: int, versions: int, policy: str, limit: int) -> tuple[int, int]:
    """Versions the worker's own plan prepares, and their distinct models (= sets)."""
    entries = [CatalogEntry(name=f"m{m}", version=str(v + 1), status="ready")
               for m in range(models) for v in range(versions)]
    wanted = wanted_versions(entries, policy, Ownership(frozenset({0}), 1), limit)
    return len(wanted), len({e.name for e in wanted})


def print_environment(args: argparse.Namespace) -> None:
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"readiness bench: commit {commit or '?'}, {os.cpu_count()} cores, load {load}, "
          f"mlflow {mlflow.__version__}, scikit-learn {dist_version('scikit-learn')}, "
          f"installer {ContainerSettings().container_installer}; "
          f"{args.warm} warm and {args.today} today models", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model of each kind")
    parser.add_argument("--warm", type=int, default=3, help="models prepared with warm wheels")
    parser.add_argument("--today", type=int, default=3, help="models built by a request")
    args = parser.parse_args()
    if args.quick:
        args.warm, args.today = 1, 1
    warnings.filterwarnings("ignore")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    print_environment(args)
    res = Results()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mb-readiness-bench-") as tmp:
        asyncio.run(run(args, Path(tmp), res))
    print_headline(res)
    print_stages(res)
    print_cpu(res)
    c = costs(res)
    print_disk(res, c)
    print_hundred(res, c)
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
