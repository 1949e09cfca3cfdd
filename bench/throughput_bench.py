"""Throughput bench (issue 6): one-row requests/s and latencies of modelbus beside its peers.

Starts a Tansu broker and an MLflow server (free ports, temporary directory), runs
discovery, catalog and a worker in-process on a private topic prefix, registers a linear
pyfunc ``y = 2a + b`` (bench/linear_model.py, the demo molecule model's requirements so that
its dependency-set image is reused) and measures, in the same run and interleaved round by
round: modelbus through Kafka, ``mlflow models serve`` over HTTP JSON, a bare Kafka echo
through the same broker and in-process ``predict``. The floors of one request are measured
too: the echo (also with a body the size of a 10,000-row request) and the model's container
called straight from the bench, without Kafka. Every modelbus answer is checked row by row
against its own request. See bench/README.md.

    .venv/bin/python bench/throughput_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import itertools
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from mlflow import MlflowClient
from mlflow.models import infer_signature

# The repository root: the test suite's serve runner (tests/support/mlflow_serve.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.mlflow_serve import MlflowServe

from modelbus.client import AsyncModelbusClient
from modelbus.demo.models import _versions
from modelbus.stack import EmbeddedBroker, EmbeddedMlflow, free_tcp_port
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import configure_logging
from modelbus_delivery.topics import read_to_end
from modelbus_worker.images.docker_build import docker_client
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings

HERE = Path(__file__).resolve().parent
IN_FLIGHT = 256  # client requests in flight; also the worker's default max in flight here
HTTP_CLIENTS = 4
BIG_ROWS = 10_000
POLL_S = 2.0
COLD_TIMEOUT_S = 900.0  # a missing dependency-set image would be built on the first request
TIMEOUT_S = 60.0
COLD_SPACING_S = 8.0  # between the cold starts of new versions
STALL_AFTER = 2 * IN_FLIGHT  # consecutive failed modelbus requests that end the run
ECHO_FETCH_WAIT_MS = 5
HARNESS_VIEW_FETCH_WAIT_MS = 100
# Exactly the demo molecule model's requirements: its dependency-set image is reused.
REQUIREMENTS = [_versions("rdkit"), _versions("pandas"), _versions("mlflow")]


@dataclass(frozen=True)
class Plan:
    rounds: int
    mb_requests: int  # per throughput round
    echo_requests: int
    serve_requests: int
    warm_up: int
    mixed: int  # multi-row correctness requests
    single: int  # one-at-a-time round trips per system
    big: int
    cold: int


# A throughput round of modelbus is as long as the echo's: sustained for several seconds,
# so that the first wave of 256 requests and the last one's drain weigh little.
FULL = Plan(3, 20000, 20000, 2000, 512, 2000, 300, 7, 3)
QUICK = Plan(1, 5000, 5000, 600, 256, 500, 100, 3, 1)


# ---------------------------------------------------------------- requests and checking

_ids = itertools.count()


def request_table(rows: int) -> pa.Table:
    """Values no other request of the run carries: a = 16384 i + r, b = -i - r/4 (exact)."""
    assert rows <= 16384
    i = next(_ids)
    return pa.table({"a": [float(16384 * i + r) for r in range(rows)],
                     "b": [-i - r / 4 for r in range(rows)]})


def expected_y(sent: pa.Table) -> list[float]:
    """What the linear model must answer for ``sent``, row by row: y = 2a + b."""
    a, b = sent.column("a").to_pylist(), sent.column("b").to_pylist()
    return [2.0 * x + y for x, y in zip(a, b, strict=True)]


@dataclass
class Verifier:
    """Every answer must carry exactly its own rows, in order: y = 2a + b row by row."""

    answers: int = 0
    rows: int = 0
    mismatches: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    failing: int = 0  # failures since the last answer

    @property
    def failed_total(self) -> int:
        return sum(self.errors.values())

    @property
    def stalled(self) -> bool:
        """Every one of the last ``STALL_AFTER`` requests failed: stop measuring."""
        return self.failing >= STALL_AFTER

    def check(self, cid: str, sent: pa.Table, got: pa.Table) -> None:
        self.answers += 1
        self.failing = 0
        a, b = sent.column("a").to_pylist(), sent.column("b").to_pylist()
        want = expected_y(sent)
        have = got.column("y").to_pylist() if "y" in got.column_names else None
        if have != want:
            self.mismatches.append(f"{cid}: a={a[:3]} b={b[:3]} want y={want[:3]} got "
                                   f"{got.num_rows} rows {got.to_pydict()!s:.120}")
        else:
            self.rows += len(want)

    def failed(self, exc: BaseException) -> None:
        self.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        self.failing += 1

    def since(self, before: Counter[str]) -> str:
        """The failures recorded after the snapshot ``before``, most common first."""
        new = self.errors - before
        return "; ".join(f"{n} x {what}" for what, n in new.most_common(3))


class Stalled(Exception):
    """modelbus stopped answering: the remaining measurements would only wait for timeouts."""


async def drive(
    total: int, limit: int, one: Callable[[int], Awaitable[object]],
    stop: Callable[[], bool] = lambda: False,
) -> float:
    """Seconds to run ``one(0..total-1)`` keeping ``limit`` calls in flight (until ``stop``)."""
    counter = itertools.count()

    async def lane() -> None:
        while not stop() and (i := next(counter)) < total:
            await one(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(limit, total))))
    return time.perf_counter() - t0


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan  # nan: the run was cut short


def p50_p99(samples: list[float]) -> tuple[float, float]:
    if not samples:
        return math.nan, math.nan
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# ---------------------------------------------------------------- bare Kafka echo (floor)

class KafkaEcho:
    """The floor: in this process, a consumer-group member (auto-commit) plus a producer
    answering every record of the request topic on the reply topic with the same value and
    correlation id header; and a client that sends (acks=all) and matches replies by id."""

    def __init__(self, servers: str, prefix: str) -> None:
        self.servers, self.prefix = servers, prefix
        self.requests, self.replies = f"{prefix}echo.requests", f"{prefix}echo.replies"
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}
        self.clients: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.send_errors = 0

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, 1, 1) for t in (self.requests, self.replies)])
        finally:
            await admin.close()
        common = {"bootstrap_servers": self.servers, "fetch_max_wait_ms": ECHO_FETCH_WAIT_MS}
        self.server_in = AIOKafkaConsumer(self.requests, group_id=f"{self.prefix}echo",
                                          auto_offset_reset="earliest", **common)
        self.client_in = AIOKafkaConsumer(enable_auto_commit=False, **common)
        self.server_out = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all")
        self.client_out = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all")
        for c in (self.server_out, self.client_out, self.server_in, self.client_in):
            await c.start()
            self.clients.append(c)
        tp = TopicPartition(self.replies, 0)
        self.client_in.assign([tp])
        await self.client_in.seek_to_end(tp)
        await self.client_in.position(tp)
        self.tasks = [asyncio.create_task(self._serve()), asyncio.create_task(self._read())]

    def pause(self) -> None:
        """Stop fetching between echo phases: a paused consumer sends no fetches, so the
        floor's idle polling takes no CPU from modelbus while modelbus is measured."""
        for consumer in (self.server_in, self.client_in):
            consumer.pause(*consumer.assignment())

    def resume(self) -> None:
        for consumer in (self.server_in, self.client_in):
            consumer.resume(*consumer.assignment())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for c in reversed(self.clients):
            with contextlib.suppress(Exception):
                await c.stop()

    async def _serve(self) -> None:
        while True:
            batch = await self.server_in.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    cid = dict(r.headers).get("correlation_id", b"")
                    sent = await self.server_out.send(self.replies, r.value, key=r.key,
                                                      headers=[("correlation_id", cid)])
                    sent.add_done_callback(self._delivered)

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.send_errors += 1

    async def _read(self) -> None:
        while True:
            batch = await self.client_in.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    fut = self.waiting.pop(dict(r.headers).get("correlation_id", b""), None)
                    if fut is not None and not fut.done():
                        fut.set_result(r.value)

    async def request(self, cid: bytes, body: bytes) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[cid] = fut
        try:
            await self.client_out.send_and_wait(self.requests, body, key=cid,
                                                headers=[("correlation_id", cid)])
            return await asyncio.wait_for(fut, TIMEOUT_S)
        finally:
            self.waiting.pop(cid, None)


# ---------------------------------------------------------------- mlflow models serve (peer)

# MlflowServe (tests/support/mlflow_serve.py): the peer, as the gateway tests run it.

class Http:
    """One keep-alive HTTP JSON client of ``/invocations``."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def invoke(self, rows: list[list[float]]) -> list[float]:
        body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}})
        try:
            resp = self._post(body)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.conn.close()  # the server closed an idle keep-alive connection: reconnect
            resp = self._post(body)
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        return [p["y"] for p in json.loads(data)["predictions"]]

    def _post(self, body: str) -> http.client.HTTPResponse:
        self.conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        return self.conn.getresponse()


def serve_throughput(port: int, total: int, errors: Counter[str]) -> float:
    """Seconds for ``HTTP_CLIENTS`` threads to post ``total`` one-row requests."""
    counter = itertools.count()
    clients = [Http(port) for _ in range(HTTP_CLIENTS)]
    go = threading.Barrier(HTTP_CLIENTS + 1)

    def lane(h: Http) -> None:
        go.wait()
        while next(counter) < total:
            try:
                if h.invoke([[1.0, 2.0]]) != [4.0]:
                    errors["wrong answer"] += 1
            except Exception as exc:  # counted, the others go on
                errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                h.conn.close()

    threads = [threading.Thread(target=lane, args=(h,)) for h in clients]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for h in clients:
        h.conn.close()
    return elapsed


# ---------------------------------------------------------------- the run

@dataclass
class Results:
    mb_rate: list[float] = field(default_factory=list)  # answered without error, per second
    mb_failed: list[int] = field(default_factory=list)  # error answers and timeouts per round
    echo_rate: list[float] = field(default_factory=list)
    serve_rate: list[float] = field(default_factory=list)
    mb_single: list[float] = field(default_factory=list)
    echo_single: list[float] = field(default_factory=list)
    serve_single: list[float] = field(default_factory=list)
    direct_single: list[float] = field(default_factory=list)  # the container, no Kafka
    mb_big: list[float] = field(default_factory=list)
    echo_big: list[float] = field(default_factory=list)
    direct_big: list[float] = field(default_factory=list)
    serve_big: list[float] = field(default_factory=list)
    local_big: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    split_worker: list[float] = field(default_factory=list)  # request → result CreateTime
    split_client: list[float] = field(default_factory=list)  # the rest of the round trip
    first_v1: float = 0.0
    check: Verifier = field(default_factory=Verifier)
    echo_errors: Counter[str] = field(default_factory=Counter)
    direct_errors: Counter[str] = field(default_factory=Counter)
    big_body_bytes: int = 0
    serve_errors: Counter[str] = field(default_factory=Counter)
    loads: list[str] = field(default_factory=list)
    # CPU milliseconds per answered one-row request in the throughput rounds: the worker's
    # process (host side: Kafka, checks, Arrow, the container's socket) and the bench's.
    worker_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_linear_model(tracking_uri: str, name: str) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("throughput-bench")
    sample = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, -1.0]})
    with mlflow.start_run(run_name="linear"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(HERE / "linear_model.py"),
            signature=infer_signature(sample, pd.DataFrame({"y": [2.5, 3.0]})),
            pip_requirements=REQUIREMENTS,
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name, tags={"datagrok": ""})
    mv = client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


def new_version(tracking_uri: str, name: str, of: str) -> str:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    src = client.get_model_version(name, of)
    model_id = src.model_id or str(src.source).rsplit("/", 1)[-1]
    return str(client.create_model_version(name, str(src.source), run_id=src.run_id,
                                           model_id=model_id).version)


def depset_status(pool: ContainerPool) -> str:
    from modelbus_worker.images.base import base_tag
    from modelbus_worker.images.depset import depset_salt
    from modelbus_worker.images.docker_build import image_exists
    from modelbus_worker.images.interpreter import default_interpreter
    from modelbus_worker.images.requirements import depset_tag, normalize_requirements

    try:
        client, s = pool.docker.client, pool.settings
        interpreter = default_interpreter(s)
        tag = depset_tag(normalize_requirements(REQUIREMENTS),
                         depset_salt(client, interpreter, base_tag(interpreter)))
        return f"{tag} ({'cached' if image_exists(client, tag) else 'NOT cached: built now'})"
    except Exception as exc:  # informative only
        return f"unknown ({type(exc).__name__}: {exc})"


async def time_split(
    settings: ModelbusSettings, reply_topic: str, round_trips: dict[str, float]
) -> tuple[list[float], list[float]]:
    """Where one-at-a-time round trips went, from the records' CreateTime stamps (ms):
    request produced → result produced (in: broker, worker, container) and the rest (out:
    broker, the client's results listener, decoding)."""
    def stamps(records: list[Any]) -> dict[str, int]:
        return {bytes(dict(r.headers).get("correlation_id", b"")).decode(errors="replace"):
                r.timestamp for r in records}

    sent = stamps(await read_to_end(settings.kafka_bootstrap_servers, settings.topics.requests))
    done = stamps(await read_to_end(settings.kafka_bootstrap_servers, reply_topic))
    inside, rest = [], []
    for cid, total in round_trips.items():
        if cid in sent and cid in done:
            inside.append((done[cid] - sent[cid]) / 1e3)
            rest.append(total - inside[-1])
    return inside, rest


class WorkerProcess:
    """``modelbus worker`` as a child process, as ``modelbus up`` runs it."""

    def __init__(self, settings: ModelbusSettings, log_path: Path) -> None:
        self.env = {
            **os.environ,
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,  # over an inherited one
            "MLFLOW_REGISTRY_URI": settings.mlflow_tracking_uri,
            "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
            "MODELBUS_WORKER_MAX_IN_FLIGHT": str(settings.worker_max_in_flight),
            "MODELBUS_LOG_LEVEL": os.environ.get("MODELBUS_LOG_LEVEL", "WARNING"),
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)

    def _spawn(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "modelbus", "worker"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        """SIGTERM: the worker drains, commits and removes its containers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            print(f"worker did not stop within 60 s; killed; log: {self.log_path}")


def quiet_logging() -> None:
    """A bench's output is its numbers: modelbus's log at ERROR, no warnings, no MLflow
    progress bars or info lines."""
    configure_logging("ERROR")
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


async def start_with_worker_process(
    stack: contextlib.AsyncExitStack, settings: ModelbusSettings, tmp: Path, key: str
) -> tuple[AsyncModelbusClient, WorkerProcess]:
    """Discovery and catalog in this process, ``modelbus worker`` as its own, and a client
    (all stopped with ``stack``); returns once ``key`` (NAME/VERSION) is in the catalog."""
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    worker = WorkerProcess(settings, tmp / "worker.log")
    bus = AsyncModelbusClient(settings=settings)
    view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog, 100)
    for service, stop in ((discovery, discovery.stop), (catalog, catalog.stop),
                          (worker, worker.stop), (bus, bus.close), (view, view.stop)):
        await service.start()
        stack.push_async_callback(stop)
    await wait_in_catalog(view, key)
    return bus, worker


async def wait_in_catalog(view: CatalogView, key: str) -> None:
    if not await view.wait_until(lambda entries: key in entries, 60):
        raise RuntimeError(f"{key} not in the catalog after 60 s")
    await asyncio.sleep(0.5)  # the worker's own view reads the same record within its fetch


def start_servers(
    stack: contextlib.AsyncExitStack, tmp: Path, prefix: str, **update: Any
) -> ModelbusSettings:
    """A broker and an MLflow server on free ports under ``tmp`` (stopped with ``stack``);
    settings pointing at them on the topic ``prefix``, with ``update`` on top."""
    broker = EmbeddedBroker(free_tcp_port(), tmp / "kafka")
    broker.start()
    stack.callback(broker.stop)
    server = EmbeddedMlflow(free_tcp_port(), tmp / "mlflow")
    server.start()
    stack.callback(server.stop)
    return ModelbusSettings().model_copy(update={
        "kafka_bootstrap_servers": broker.bootstrap_servers,
        "mlflow_tracking_uri": server.tracking_uri,
        "topic_prefix": prefix,
        "poll_interval_s": POLL_S,
        **update,
    })


async def run(
    plan: Plan, worker_in_flight: int, tmp: Path, res: Results, in_process: bool
) -> None:
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-linear-{run_id}"
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-tp-{run_id}.",
                                 worker_max_in_flight=worker_in_flight)
        uri = settings.mlflow_tracking_uri
        pool = ContainerPool(ContainerSettings(), docker_client(), uri)
        print_settings(settings, pool)
        v1 = log_linear_model(uri, name)
        discovery, catalog = build_discovery(settings), build_catalog(settings)
        worker: WorkerService | WorkerProcess = (
            build_worker(settings, pool)  # worker.stop() closes the pool
            if in_process else WorkerProcess(settings, tmp / "worker.log")
        )
        print(f"worker: {'in the bench process' if in_process else 'its own process'}")
        bus = AsyncModelbusClient(settings=settings)
        echo = KafkaEcho(settings.kafka_bootstrap_servers, settings.topic_prefix)
        # The bench's own view only waits for entries: polled slowly, it takes no CPU from
        # what is measured.
        view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog,
                           HARNESS_VIEW_FETCH_WAIT_MS)
        for service, stop in ((discovery, discovery.stop), (catalog, catalog.stop),
                              (worker, worker.stop), (bus, bus.close), (echo, echo.stop),
                              (view, view.stop)):
            await service.start()
            stack.push_async_callback(stop)
        serve = MlflowServe(f"models:/{name}/{v1}", uri, tmp / "mlflow-serve.log")
        stack.callback(serve.stop)
        await asyncio.to_thread(serve.start)
        await wait_in_catalog(view, f"{name}/{v1}")
        t0 = time.perf_counter()
        await bus.predict(name, request_table(1), v1, COLD_TIMEOUT_S)
        res.first_v1 = time.perf_counter() - t0
        print(f"{name} v{v1}: first request (files downloaded, container started) "
              f"{res.first_v1:.1f} s; mlflow models serve on port {serve.port}", flush=True)
        local = mlflow.pyfunc.load_model(f"models:/{name}/{v1}")
        # The same model's container called straight from this process (a container of
        # its own unless the worker runs here): what one predict costs without Kafka.
        if not in_process:
            stack.push_async_callback(pool.close)
        await pool.warm(name, v1)

        async def mb_one(
            table: pa.Table, version: str = v1, wait_s: float = TIMEOUT_S
        ) -> str | None:
            """One checked request: its correlation id, None (the failure counted) if it failed."""
            cid = uuid.uuid4().hex
            try:
                got = await bus.predict(name, table, version, wait_s, correlation_id=cid)
            except Exception as exc:  # counted, printed at the end
                res.check.failed(exc)
                return None
            res.check.check(cid, table, got)
            return cid

        body = to_ipc_stream(request_table(1))
        big_body = to_ipc_stream(request_table(BIG_ROWS))  # the size of a 10,000-row request
        res.big_body_bytes = len(big_body)

        async def echo_one(_: int = 0, sent: bytes = body) -> None:
            cid = uuid.uuid4().hex.encode()
            try:
                if await echo.request(cid, sent) != sent:
                    res.echo_errors["wrong body"] += 1
            except Exception as exc:
                res.echo_errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

        async def direct_one(table: pa.Table) -> float:
            """Seconds one predict took in the container called straight from here (its
            answer checked afterwards, outside the time)."""
            t0 = time.perf_counter()
            try:
                got = await pool.predict(name, v1, table, TIMEOUT_S)
            except Exception as exc:
                res.direct_errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                return math.nan
            seconds = time.perf_counter() - t0
            if got.column("y").to_pylist() != expected_y(table):
                res.direct_errors["wrong answer"] += 1
            return seconds

        def phase_done(what: str, before: Counter[str]) -> None:
            """Print the phase's failures; end the run when modelbus stopped answering."""
            failures = res.check.since(before)
            if failures:
                print(f"  {what}: modelbus FAILURES {failures}", flush=True)
            if res.check.stalled:
                raise Stalled(f"{res.check.failing} modelbus requests in a row failed "
                              f"({what}); last: {failures}")

        async def mb_rate(n: int) -> float:
            """Answers without error per second; the failures of the round are recorded."""
            tables = [request_table(1) for _ in range(n)]
            failed = res.check.failed_total
            pid = worker.proc.pid if isinstance(worker, WorkerProcess) and worker.proc else None
            worker_cpu = process_cpu_s(pid) if pid else math.nan
            client_cpu = time.process_time()
            seconds = await drive(n, IN_FLIGHT, lambda i: mb_one(tables[i]),
                                  lambda: res.check.stalled)
            res.mb_failed.append(res.check.failed_total - failed)
            answered = n - res.mb_failed[-1]
            if answered:
                worker_s = process_cpu_s(pid) - worker_cpu if pid else math.nan
                res.worker_cpu_ms.append(worker_s * 1e3 / answered)
                res.client_cpu_ms.append((time.process_time() - client_cpu) * 1e3 / answered)
            return answered / seconds

        async def echo_rate(n: int) -> float:
            echo.resume()
            try:
                return n / await drive(n, IN_FLIGHT, echo_one)
            finally:
                echo.pause()

        async def serve_rate(n: int) -> float:
            return n / await asyncio.to_thread(serve_throughput, serve.port, n, res.serve_errors)

        print(f"warm-up ({plan.warm_up} requests each) ...", flush=True)
        before = res.check.errors.copy()
        await mb_rate(plan.warm_up)
        phase_done("warm-up", before)
        await echo_rate(plan.warm_up)
        await serve_rate(plan.warm_up // 4)

        for r in range(plan.rounds):
            res.loads.append(load())
            before = res.check.errors.copy()
            res.mb_rate.append(await mb_rate(plan.mb_requests))
            res.echo_rate.append(await echo_rate(plan.echo_requests))
            res.serve_rate.append(await serve_rate(plan.serve_requests))
            print(f"round {r + 1}/{plan.rounds} requests/s: modelbus {res.mb_rate[-1]:,.0f}, "
                  f"echo {res.echo_rate[-1]:,.0f}, mlflow serve {res.serve_rate[-1]:,.0f} "
                  f"(load {res.loads[-1]})", flush=True)
            phase_done(f"round {r + 1}", before)

        mixed = [request_table(1 + i % 8) for i in range(plan.mixed)]
        before = res.check.errors.copy()
        seconds = await drive(plan.mixed, IN_FLIGHT, lambda i: mb_one(mixed[i]),
                              lambda: res.check.stalled)
        print(f"correctness: {plan.mixed} requests of 1-8 rows, {IN_FLIGHT} in flight, "
              f"{seconds:.1f} s", flush=True)
        phase_done("correctness", before)

        http1 = Http(serve.port)
        before = res.check.errors.copy()
        single_cids: dict[str, float] = {}
        echo.resume()
        for i in range(20 + plan.single):  # interleaved call by call, after 20 warm-ups
            t0 = time.perf_counter()
            answered = await mb_one(request_table(1))
            t1 = time.perf_counter()
            await echo_one()
            t2 = time.perf_counter()
            http1.invoke([[1.0, 2.0]])
            t3 = time.perf_counter()
            direct = await direct_one(request_table(1))
            if i >= 20:
                if answered:
                    res.mb_single.append(t1 - t0)
                    single_cids[answered] = t1 - t0
                res.echo_single.append(t2 - t1)
                res.serve_single.append(t3 - t2)
                if not math.isnan(direct):
                    res.direct_single.append(direct)
            if res.check.failing >= 5:  # one at a time, each failure may be a whole timeout
                raise Stalled(f"one at a time: 5 modelbus requests in a row failed: "
                              f"{res.check.since(before)}")
        echo.pause()
        res.loads.append(load())
        print(f"one at a time: {plan.single} round trips each (load {res.loads[-1]})",
              flush=True)
        phase_done("one at a time", before)
        with contextlib.suppress(TimeoutError):  # informative only
            async with asyncio.timeout(60):
                res.split_worker, res.split_client = await time_split(
                    settings, bus.reply_topic, single_cids
                )

        before = res.check.errors.copy()
        echo.resume()
        for i in range(1 + plan.big):  # the first of each is a warm-up
            table = request_table(BIG_ROWS)
            rows, frame = table.to_pandas().values.tolist(), table.to_pandas()
            t0 = time.perf_counter()
            answered = await mb_one(table)
            t1 = time.perf_counter()
            y_http = http1.invoke(rows)
            t2 = time.perf_counter()
            local.predict(frame)
            t3 = time.perf_counter()
            await echo_one(sent=big_body)
            t4 = time.perf_counter()
            direct = await direct_one(table)
            if y_http != [2.0 * a + b for a, b in rows]:
                res.serve_errors["wrong 10,000-row answer"] += 1
            if i:
                if answered:
                    res.mb_big.append(t1 - t0)
                res.serve_big.append(t2 - t1)
                res.local_big.append(t3 - t2)
                res.echo_big.append(t4 - t3)
                if not math.isnan(direct):
                    res.direct_big.append(direct)
        echo.pause()
        http1.conn.close()
        res.loads.append(load())
        print(f"10,000 rows: {plan.big} requests each (load {res.loads[-1]})", flush=True)
        phase_done("10,000 rows", before)

        for _ in range(plan.cold):
            # New versions arrive minutes apart in practice; the spare runtime the previous
            # cold start used is replaced in the background within a few seconds.
            await asyncio.sleep(COLD_SPACING_S)
            version = await asyncio.to_thread(new_version, uri, name, v1)
            await wait_in_catalog(view, f"{name}/{version}")
            t0 = time.perf_counter()
            if await mb_one(request_table(1), version, COLD_TIMEOUT_S):
                res.cold.append(time.perf_counter() - t0)
                print(f"cold start of v{version}: {res.cold[-1]:.1f} s", flush=True)
            else:
                print(f"cold start of v{version} FAILED: {res.check.since(before)}")
        res.loads.append(load())
        if echo.send_errors:
            res.echo_errors["echo reply not delivered"] += echo.send_errors
        print("stopping ...", flush=True)


# ---------------------------------------------------------------- printing

def print_settings(settings: ModelbusSettings, pool: ContainerPool) -> None:
    c = pool.settings
    worker = ", ".join(f"{k}={v}" for k, v in settings.model_dump().items()
                       if k.startswith("worker_"))
    print(f"modelbus settings given to the worker: {worker}, kafka_fetch_max_wait_ms="
          f"{settings.kafka_fetch_max_wait_ms}, topic_partitions={settings.topic_partitions}, "
          f"max_message_bytes={settings.max_message_bytes}, poll_interval_s="
          f"{settings.poll_interval_s}, topic_prefix={settings.topic_prefix}")
    print(f"container settings: cpus={c.cpus}, memory_limit={c.memory_limit}, "
          f"max_containers={c.max_containers}, request_timeout_s={c.request_timeout_s}")
    print(f"dependency-set image of the linear model: {depset_status(pool)}", flush=True)


def print_environment(args: argparse.Namespace) -> None:
    import docker

    engine = docker.from_env().version().get("Version", "?")
    versions = ", ".join(f"{p} {dist_version(p)}" for p in
                         ("mlflow", "pyarrow", "aiokafka", "pandas", "uvicorn"))
    import modelbus

    source = Path(modelbus.__file__).resolve().parents[2]  # what is measured
    git = ["git", "-C", str(source)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.splitlines()
    print(f"machine: nproc={os.cpu_count()} {platform.platform()}; python "
          f"{platform.python_version()}; docker engine {engine}; load {load()}")
    diff = subprocess.run([*git, "diff", "HEAD"], capture_output=True).stdout
    print(f"modelbus from {source}: commit {commit or '? (not a git work tree)'}"
          + (f" + {len(dirty)} modified tracked files (diff sha256 "
             f"{hashlib.sha256(diff).hexdigest()[:12]})" if dirty else ""))
    print(f"versions: {versions}")
    workers = os.environ.get("MLFLOW_MODELS_WORKERS", "1 (default)")
    print(f"peers: mlflow models serve --env-manager local, uvicorn workers {workers}, "
          f"{HTTP_CLIENTS} keep-alive http.client threads; bare Kafka echo = aiokafka "
          f"consumer (group) + producer in this process, fetch_max_wait_ms="
          f"{ECHO_FETCH_WAIT_MS}, client acks=all, {IN_FLIGHT} in flight")
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith("MODELBUS_"))
    flags = (" --quick" if args.quick else "") + (
        " --in-process-worker" if args.in_process_worker else "") + (
        f" --worker-max-in-flight {args.worker_max_in_flight}"
        if args.worker_max_in_flight != IN_FLIGHT else "")
    print(f"rerun: {env + ' ' if env else ''}.venv/bin/python bench/throughput_bench.py{flags}",
          flush=True)


def ratio(mine: float, peer: float) -> str:
    return f"{mine / peer:.3g}x" if peer and not math.isnan(mine / peer) else "n/a"


def print_table(res: Results) -> None:
    med = median
    mb, echo, serve = med(res.mb_rate), med(res.echo_rate), med(res.serve_rate)
    (m50, m99), (e50, e99), (s50, s99) = (p50_p99(res.mb_single), p50_p99(res.echo_single),
                                          p50_p99(res.serve_single))
    mbig, sbig, lbig = med(res.mb_big), med(res.serve_big), med(res.local_big)
    ebig, dbig = med(res.echo_big), med(res.direct_big)
    d50 = med(res.direct_single)
    ms = 1e3
    print("\nratio = modelbus ÷ peer (above 1 is better for requests/s, worse for times)\n")
    print("| figure | modelbus | peer / floor in the same run |")
    print("|---|---|---|")
    failed = sum(res.mb_failed[1:])  # the first is the warm-up's
    note = f" (answered; {failed:,} requests of the rounds FAILED)" if failed else ""
    print(f"| one-row requests/s, {IN_FLIGHT} in flight (client included) | {mb:,.0f} /s{note} | "
          f"`mlflow models serve` with {HTTP_CLIENTS} concurrent HTTP JSON clients: "
          f"{serve:,.0f} /s (ratio {ratio(mb, serve)}); bare Kafka echo through the same "
          f"broker: {echo:,.0f} /s (ratio {ratio(mb, echo)}) |")
    print(f"| one-row round trip p50 / p99 (one request at a time) | {m50 * ms:.1f} / "
          f"{m99 * ms:.1f} ms | bare Kafka echo (request → consumer → reply, fetch wait "
          f"{ECHO_FETCH_WAIT_MS} ms): {e50 * ms:.1f} / {e99 * ms:.1f} ms (ratio "
          f"{ratio(m50, e50)} / {ratio(m99, e99)}); `mlflow models serve`: {s50 * ms:.1f} / "
          f"{s99 * ms:.1f} ms (ratio {ratio(m50, s50)} / {ratio(m99, s99)}); the model's "
          f"container called directly (no Kafka): p50 {d50 * ms:.1f} ms, so echo + container "
          f"{(e50 + d50) * ms:.1f} ms (ratio {ratio(m50, e50 + d50)}) |")
    print(f"| {BIG_ROWS:,}-row request p50 | {mbig * ms:.1f} ms | `mlflow models serve`: "
          f"{sbig * ms:.1f} ms (ratio {ratio(mbig, sbig)}); in-process predict: "
          f"{lbig * ms:.1f} ms (ratio {ratio(mbig, lbig)}); bare Kafka echo of a body this "
          f"size ({res.big_body_bytes / 1e3:,.0f} kB): {ebig * ms:.1f} ms; the model's container "
          f"called directly: {dbig * ms:.1f} ms; echo + container {(ebig + dbig) * ms:.1f} ms "
          f"(ratio {ratio(mbig, ebig + dbig)}) |")
    wcpu, ccpu = med(res.worker_cpu_ms[1:]), med(res.client_cpu_ms[1:])  # [0]: warm-up
    print(f"| host CPU per one-row request in the throughput rounds | worker process "
          f"{wcpu:.3f} ms | the bench's process (client, {IN_FLIGHT} in flight): "
          f"{ccpu:.3f} ms |")
    cold = f"{median(res.cold):.1f} s (n={len(res.cold)}: " + ", ".join(
        f"{x:.1f}" for x in res.cold) + ")" if res.cold else "n/a"
    print(f"| first request of a version whose dependency image is cached (cold start) | "
          f"{cold} | — |")
    print(f"\nsamples: throughput rounds modelbus {fmt(res.mb_rate)}, echo "
          f"{fmt(res.echo_rate)}, mlflow serve {fmt(res.serve_rate)} requests/s; one-at-a-time "
          f"n={len(res.mb_single)} each; {BIG_ROWS:,}-row n={len(res.mb_big)} each; first "
          f"request of v1 {res.first_v1:.1f} s; load averages (1/5/15 min) at each phase: "
          f"{', '.join(res.loads)}")
    (w50, w99), (r50, r99) = p50_p99(res.split_worker), p50_p99(res.split_client)
    print(f"one-at-a-time modelbus round trips by record timestamps (n={len(res.split_worker)}, "
          f"ms resolution): request produced → result produced p50 {w50 * ms:.1f} / p99 "
          f"{w99 * ms:.1f} ms (broker in, worker, container); result produced → predict "
          f"returned p50 {r50 * ms:.1f} / p99 {r99 * ms:.1f} ms (broker out, results "
          f"listener, decoding)")
    c = res.check
    print(f"\ncorrectness (y = 2a + b row by row, per correlation id): {c.answers} answers, "
          f"{c.rows} rows checked, mismatches: {len(c.mismatches)}, failed requests: "
          f"{sum(c.errors.values())}")
    for line in c.mismatches[:20]:
        print(f"  MISMATCH {line}")
    for what, n in c.errors.most_common(10):
        print(f"  modelbus error x{n}: {what}")
    for label, errors in (("echo", res.echo_errors), ("mlflow serve", res.serve_errors),
                          ("container called directly", res.direct_errors)):
        for what, n in errors.most_common(5):
            print(f"  {label} error x{n}: {what}")


def fmt(samples: list[float]) -> str:
    return ", ".join(f"{x:,.0f}" for x in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer requests")
    parser.add_argument("--worker-max-in-flight", type=int, default=IN_FLIGHT, metavar="N",
                        help=f"worker_max_in_flight given to the worker (default {IN_FLIGHT})")
    parser.add_argument("--in-process-worker", action="store_true",
                        help="run the worker in the bench's process and event loop (sharing "
                             "one core with the client) instead of its own process")
    args = parser.parse_args()
    quiet_logging()  # failures are counted and summarised below
    print_environment(args)
    plan = QUICK if args.quick else FULL
    res = Results()
    started = time.monotonic()
    aborted = None
    with tempfile.TemporaryDirectory(prefix="mb-throughput-bench-") as tmp:
        try:
            asyncio.run(run(plan, args.worker_max_in_flight, Path(tmp), res,
                            args.in_process_worker))
        except Stalled as exc:
            aborted = str(exc)
    if aborted:
        print(f"\nABORTED, modelbus stopped answering: {aborted}")
    print_table(res)
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s; medians of repeated "
          f"measurements; everything ran on this machine at once (client, worker, broker, "
          f"MLflow, peers), so CPU contention is part of every figure.")
    if aborted or res.check.mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
