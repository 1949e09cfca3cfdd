"""Scale-out bench: one-row requests/s with one worker, then two, for a model that costs
about 20 ms per call whatever the rows (bench/sleepy_model.py, batching off by tag).

Starts a Tansu broker and an MLflow server (free ports, temporary directory), runs discovery
and catalog in this process on a private topic prefix and registers the model with the tags
``datagrok``, ``modelbus.batching=off`` and ``modelbus.shards=K``. Phase A runs one
``python -m modelbus worker`` process, phase B two in the same consumer group; each phase
waits for the group's assignment, warms up and then keeps N one-row requests in flight for S
seconds through ``AsyncModelbusClient``, checking every answer (y = x). Before phase B it
prints which shard key lands on which partition and worker; when all K keys land on one
worker, it raises K by one (up to 8) and says so. The model's name is fixed, so the keys'
partitions are the same in every run. The target (issue text): two workers at least 1.8x
one; it is printed, not asserted. See bench/README.md.

    .venv/bin/python bench/scale_out_bench.py [--shards K] [--seconds S] [--in-flight N]

Exit code 1 when the run failed (a service did not come up, a request failed) or an answer
was wrong; 0 otherwise, whatever the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import mlflow
import pandas as pd
import pyarrow as pa
from aiokafka.partitioner import DefaultPartitioner
from mlflow import MlflowClient
from mlflow.models import infer_signature
from throughput_bench import (
    REQUIREMENTS,
    WorkerProcess,
    load,
    start_servers,
    wait_in_catalog,
)

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery
from modelbus_contract.keys import request_key
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import configure_logging
from modelbus_delivery.topics import read_to_end
from modelbus_worker.pool.containers import LABEL_OWNER

HERE = Path(__file__).resolve().parent
MODEL_NAME = "bench-sleepy"  # fixed: its shard keys hash to the same partitions every run
MAX_SHARDS_TRIED = 8
TARGET = 1.8
POLL_S = 1.0
WARM_TIMEOUT_S = 900.0  # a missing dependency-set image would be built on the first request
TIMEOUT_S = 60.0
ASSIGN_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class BenchFailed(Exception):
    """The run itself failed: a service did not come up, or requests failed."""


# ---------------------------------------------------------------- workers

class BenchWorker(WorkerProcess):
    """``python -m modelbus worker`` with no standby runtimes and INFO logs (for its
    ``partitions_assigned`` events); stopping it also removes the containers it left."""

    started: ClassVar[list[BenchWorker]] = []  # every worker of the run, for the last sweep

    def __init__(self, settings: ModelbusSettings, log_path: Path, label: str) -> None:
        super().__init__(settings, log_path)
        self.env["MODELBUS_WORKER_MAX_STANDBY"] = "0"
        self.env["MODELBUS_LOG_LEVEL"] = "INFO"
        self.env["MODELBUS_TOPIC_PARTITIONS"] = str(settings.topic_partitions)
        self.label = label
        self.requests_topic = settings.topics.requests

    async def start(self) -> None:
        await super().start()
        BenchWorker.started.append(self)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def assigned(self) -> frozenset[int] | None:
        """The requests-topic partitions of the latest ``partitions_assigned`` event in the
        log, None before the first; raises BenchFailed when the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchFailed(f"{self.label} (pid {self.pid}) exited {self.proc.returncode}:\n"
                              f"{self.tail()}")
        latest = None
        with contextlib.suppress(FileNotFoundError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"partitions_assigned"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("event") == "partitions_assigned":
                        latest = frozenset(
                            int(p.rsplit("/", 1)[1]) for p in event.get("partitions", [])
                            if p.rsplit("/", 1)[0] == self.requests_topic)
        return latest

    def tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return "(no log)"

    async def stop(self) -> None:
        """SIGTERM and wait (the worker drains and removes its containers); SIGKILL after
        ``STOP_TIMEOUT_S``; then remove whatever container still carries its owner label."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
                print(f"  {self.label} did not stop within {STOP_TIMEOUT_S:.0f} s: killed")
        left = await asyncio.to_thread(remove_containers, self.pid)
        if left:
            print(f"  {self.label}: removed {left} container(s) it left behind")

    def kill_now(self) -> None:
        """The last sweep (after an interruption): SIGKILL if alive, remove its containers."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                remove_containers(self.pid)


def remove_containers(pid: int) -> int:
    """Force-remove the containers of the worker process ``pid`` of this host."""
    import docker

    client = docker.from_env()
    try:
        owner = f"{socket.gethostname()}:{pid}"
        found = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
        for c in found:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        return len(found)
    finally:
        client.close()


async def wait_for_split(workers: list[BenchWorker], partitions: int) -> list[frozenset[int]]:
    """Wait until the workers' latest assignments share out every partition, each having
    some: what the sticky assignor gave each of them."""
    everything = frozenset(range(partitions))
    deadline = time.monotonic() + ASSIGN_TIMEOUT_S
    while time.monotonic() < deadline:
        sets = [w.assigned() for w in workers]
        if all(s for s in sets):
            owned = [s for s in sets if s is not None]
            disjoint = sum(len(s) for s in owned) == len(everything)
            if disjoint and frozenset().union(*owned) == everything:
                await asyncio.sleep(1.0)  # the consumers fetch from their new positions
                return owned
        await asyncio.sleep(0.25)
    tails = "\n".join(f"--- {w.label} log tail:\n{w.tail()}" for w in workers)
    raise BenchFailed(f"the partitions were not shared out within {ASSIGN_TIMEOUT_S:.0f} s "
                      f"(latest: {[w.assigned() for w in workers]}):\n{tails}")


def fmt_parts(parts: frozenset[int]) -> str:
    return ",".join(str(p) for p in sorted(parts))


# ---------------------------------------------------------------- shard keys

def key_partitions(name: str, shards: int, partitions: int) -> dict[str, int]:
    """Each shard key's partition, as the client's producer computes it (murmur2)."""
    every = list(range(partitions))
    part = DefaultPartitioner()
    return {(k := request_key(name, s)): part(k.encode(), every, every) for s in range(shards)}


def keys_by_worker(
    keys: dict[str, int], owned: list[frozenset[int]]
) -> list[list[str]]:
    return [[k for k, p in keys.items() if p in parts] for parts in owned]


# ---------------------------------------------------------------- requests

@dataclass
class Phase:
    workers: int
    shards: int
    seconds: float = 0.0
    answered: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cids: set[str] = field(default_factory=set)
    load: str = ""
    keys: Counter[str] = field(default_factory=Counter)  # requests per key (read back)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1e3 if self.latencies else float("nan")


_xs = itertools.count(1)


async def one(
    bus: AsyncModelbusClient, version: str, phase: Phase | None, wait_s: float = TIMEOUT_S
) -> Exception | None:
    """One checked one-row request with a value no other request has; the failure, if any.
    With ``phase``, its outcome is counted there."""
    x = float(next(_xs))
    cid = uuid.uuid4().hex
    t0 = time.perf_counter()
    try:
        got = await bus.predict(MODEL_NAME, pa.table({"x": [x]}), version, wait_s,
                                correlation_id=cid)
    except Exception as exc:
        if phase is not None:
            phase.failed[f"{type(exc).__name__}: {str(exc)[:100]}"] += 1
        return exc
    took = time.perf_counter() - t0
    have = got.column("y").to_pylist() if "y" in got.column_names else None
    if phase is not None:
        phase.cids.add(cid)
        if have != [x]:
            phase.mismatches.append(f"{cid}: x={x} got {got.to_pydict()!s:.120}")
        else:
            phase.answered += 1
            phase.latencies.append(took)
    elif have != [x]:
        return ValueError(f"warm-up answer for x={x}: {got.to_pydict()!s:.120}")
    return None


async def warm_up(bus: AsyncModelbusClient, version: str, shards: int) -> float:
    """Every shard key twice (the client takes them in turn), so that each worker owning one
    has started its container; then a short burst. Seconds taken."""
    t0 = time.perf_counter()
    for _ in range(2):
        outcomes = await asyncio.gather(
            *(one(bus, version, None, WARM_TIMEOUT_S) for _ in range(shards)))
        failures = [o for o in outcomes if o is not None]
        if failures:
            raise BenchFailed(f"warm-up: {len(failures)} of {shards} requests failed: "
                              f"{failures[0]!r:.300}")
    outcomes = await asyncio.gather(*(one(bus, version, None) for _ in range(4 * shards)))
    if any(o is not None for o in outcomes):
        raise BenchFailed(f"warm-up burst: {next(o for o in outcomes if o)!r:.300}")
    return time.perf_counter() - t0


async def measure(
    bus: AsyncModelbusClient, version: str, phase: Phase, seconds: float, in_flight: int
) -> None:
    """Keep ``in_flight`` requests going for ``seconds``; requests/s = answers (checked)
    over the time until the last one returned."""
    t0 = time.perf_counter()
    end = t0 + seconds

    async def lane() -> None:
        while time.perf_counter() < end:
            await one(bus, version, phase)

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    phase.seconds = time.perf_counter() - t0
    phase.load = load()


# ---------------------------------------------------------------- the run

def register(tracking_uri: str, shards: int) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("scale-out-bench")
    sample = pd.DataFrame({"x": [1.0, 2.0]})
    # mlflow prints links to the run on stdout: not part of the bench's output
    with contextlib.redirect_stdout(io.StringIO()), mlflow.start_run(run_name="sleepy"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(HERE / "sleepy_model.py"),
            signature=infer_signature(sample, pd.DataFrame({"y": [1.0, 2.0]})),
            pip_requirements=REQUIREMENTS,
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(MODEL_NAME, tags={
        "datagrok": "", "modelbus.batching": "off", "modelbus.shards": str(shards)})
    mv = client.create_model_version(MODEL_NAME, info.model_uri, run_id=info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


async def set_shards(view: CatalogView, tracking_uri: str, key: str, shards: int) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    await asyncio.to_thread(client.set_registered_model_tag, MODEL_NAME, "modelbus.shards",
                            str(shards))
    if not await view.wait_until(lambda e: key in e and e[key].shards == shards, 60):
        raise BenchFailed(f"the catalog entry of {key} did not show shards={shards} in 60 s")
    await asyncio.sleep(1.0)  # the client's own catalog view reads the same record


@dataclass
class Run:
    args: argparse.Namespace
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partitions: int = 0
    split: str = ""


async def run(args: argparse.Namespace, tmp: Path, res: Run) -> None:
    run_id = uuid.uuid4().hex[:8]
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-so-{run_id}.")
        uri = settings.mlflow_tracking_uri
        res.partitions = settings.topic_partitions
        shards = args.shards
        version = await asyncio.to_thread(register, uri, shards)
        key = f"{MODEL_NAME}/{version}"
        discovery, catalog = build_discovery(settings), build_catalog(settings)
        bus = AsyncModelbusClient(settings=settings)
        view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
        for service, stop in ((discovery, discovery.stop), (catalog, catalog.stop),
                              (bus, bus.close), (view, view.stop)):
            await service.start()
            stack.push_async_callback(stop)
        await wait_in_catalog(view, key)
        entry = view.entries[key]
        print(f"catalog entry {key}: batching={entry.batching}, shards={entry.shards}, "
              f"status={entry.status}; prefix {settings.topic_prefix}, "
              f"{settings.topic_partitions} request partitions", flush=True)
        if entry.batching or entry.shards != shards:
            raise BenchFailed(f"the catalog entry does not carry the tags: {entry!r:.300}")
        await asyncio.sleep(1.0)  # the client's catalog view: shard keys known

        async def phase(workers: list[BenchWorker], shards: int) -> Phase:
            ph = Phase(len(workers), shards)
            took = await warm_up(bus, version, shards)
            print(f"  warm-up {took:.1f} s (containers started); measuring {args.seconds:.0f} s "
                  f"with {args.in_flight} in flight ...", flush=True)
            await measure(bus, version, ph, args.seconds, args.in_flight)
            print(f"  {ph.rate:,.1f} requests/s, p50 {ph.p50_ms:.1f} ms, {ph.answered} "
                  f"answered, {sum(ph.failed.values())} failed, {len(ph.mismatches)} wrong "
                  f"(load {ph.load})", flush=True)
            res.phases.append(ph)
            return ph

        async def start(workers: list[BenchWorker]) -> None:
            for w in workers:
                stack.push_async_callback(w.stop)  # also on an interruption
            await asyncio.gather(*(w.start() for w in workers))

        # Phase A: one worker.
        print(f"\nphase A: 1 worker (load {load()})", flush=True)
        solo = BenchWorker(settings, tmp / "worker-a.log", "worker A")
        await start([solo])
        t0 = time.perf_counter()
        (owned,) = await wait_for_split([solo], settings.topic_partitions)
        print(f"  {solo.label} (pid {solo.pid}) owns partitions {fmt_parts(owned)} "
              f"after {time.perf_counter() - t0:.1f} s", flush=True)
        await phase([solo], shards)
        await solo.stop()

        # Phase B: two workers in the same group.
        print(f"\nphase B: 2 workers (load {load()})", flush=True)
        pair = [BenchWorker(settings, tmp / f"worker-b{i}.log", f"worker B{i}")
                for i in (1, 2)]
        await start(pair)
        t0 = time.perf_counter()
        owned_b = await wait_for_split(pair, settings.topic_partitions)
        print(f"  partitions shared out after {time.perf_counter() - t0:.1f} s: " + "; ".join(
            f"{w.label} (pid {w.pid}) {fmt_parts(p)}" for w, p in zip(pair, owned_b,
                                                                      strict=True)),
              flush=True)
        while True:
            keys = key_partitions(MODEL_NAME, shards, settings.topic_partitions)
            split = keys_by_worker(keys, owned_b)
            for w, mine in zip(pair, split, strict=True):
                listed = ", ".join(f"{k}→p{keys[k]}" for k in mine) or "none"
                print(f"  shards={shards}: {w.label} gets {len(mine)} key(s): {listed}")
            if all(split):
                break
            note = (f"with shards={shards} all {shards} keys land on one worker: two workers "
                    f"cannot beat one (ratio ≤ 1x)")
            if shards >= MAX_SHARDS_TRIED:
                print(f"  NOTE {note}; shards={MAX_SHARDS_TRIED} reached, measuring anyway",
                      flush=True)
                res.notes.append(note + " (measured anyway)")
                break
            res.notes.append(f"{note}; shards raised to {shards + 1}")
            print(f"  NOTE {note}: setting modelbus.shards={shards + 1}", flush=True)
            shards += 1
            await set_shards(view, uri, key, shards)
        most = max(len(s) for s in split)
        res.split = (" / ".join(str(len(s)) for s in split)
                     + f" keys of {shards} (the busier worker gets {most}/{shards} of the "
                       f"requests: ratio at most {min(2.0, shards / most):.2g}x)")
        await phase(pair, shards)
        await asyncio.gather(*(w.stop() for w in pair))

        # Which keys the measured requests carried (read back from the requests topic).
        records = await read_to_end(settings.kafka_bootstrap_servers, settings.topics.requests)
        by_cid = {bytes(dict(r.headers).get("correlation_id", b"")).decode(errors="replace"):
                  (r.key or b"").decode(errors="replace") for r in records}
        for ph in res.phases:
            ph.keys = Counter(by_cid[c] for c in ph.cids if c in by_cid)
        print("\nstopping ...", flush=True)


# ---------------------------------------------------------------- printing

def environment() -> str:
    import docker

    client = docker.from_env()
    try:
        engine = client.version().get("Version", "?")
    finally:
        client.close()
    import modelbus

    source = Path(modelbus.__file__).resolve().parents[2]
    git = ["git", "-C", str(source)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.splitlines()
    return (f"machine: nproc={os.cpu_count()} {platform.platform()}; python "
            f"{platform.python_version()}; docker engine {engine}; load {load()}\n"
            f"modelbus: commit {commit or '?'}"
            + (f" + {len(dirty)} modified tracked files" if dirty else ""))


def print_table(res: Run) -> bool:
    """The summary; True when the target ratio was met."""
    a = next((p for p in res.phases if p.workers == 1), None)
    b = next((p for p in res.phases if p.workers == 2), None)
    print("\n| workers | shards | requests/s | p50 ms | answered | failed | wrong | load "
          "1/5/15 min |")
    print("|---|---|---|---|---|---|---|---|")
    for p in res.phases:
        print(f"| {p.workers} | {p.shards} | {p.rate:,.1f} | {p.p50_ms:.1f} | {p.answered} | "
              f"{sum(p.failed.values())} | {len(p.mismatches)} | {p.load} |")
    met = False
    if a is not None and b is not None and a.rate:
        ratio = b.rate / a.rate
        met = ratio >= TARGET
        print(f"\nratio 2 workers ÷ 1 worker: {ratio:.2f}x — target ≥ {TARGET}x: "
              f"{'met' if met else 'NOT met'}")
    else:
        print("\nratio: n/a (the run did not finish both phases)")
    if res.split:
        print(f"key split in phase B: {res.split}")
    for note in res.notes:
        print(f"note: {note}")
    for p in res.phases:
        if p.keys:
            print(f"requests per key, {p.workers} worker(s): "
                  + ", ".join(f"{k} {n}" for k, n in sorted(p.keys.items())))
        for what, n in p.failed.most_common(5):
            print(f"  {p.workers} worker(s): FAILED x{n}: {what}")
        for line in p.mismatches[:10]:
            print(f"  {p.workers} worker(s): WRONG ANSWER {line}")
    a_ = res.args
    print(f"settings: model {MODEL_NAME} (predict sleeps 20 ms, y = x), tags datagrok, "
          f"modelbus.batching=off, modelbus.shards={a_.shards} asked; {a_.in_flight} one-row "
          f"requests in flight for {a_.seconds:.0f} s per phase, every answer checked; "
          f"{res.partitions} request partitions; worker MODELBUS_WORKER_MAX_STANDBY=0, other "
          f"MODELBUS_* from the environment: " + (" ".join(
              f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MODELBUS_"))
              or "none"))
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shards", type=int, default=4, metavar="K",
                        help="the model's modelbus.shards tag (default 4)")
    parser.add_argument("--seconds", type=float, default=15.0, metavar="S",
                        help="measuring time per phase (default 15)")
    parser.add_argument("--in-flight", type=int, default=32, metavar="N",
                        help="one-row requests in flight (default 32)")
    args = parser.parse_args()
    if not 1 <= args.shards <= 64 or args.seconds <= 0 or args.in_flight < 1:
        parser.error("need 1 <= K <= 64, S > 0, N >= 1")
    configure_logging("ERROR")
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    print(environment(), flush=True)
    res = Run(args)
    started = time.monotonic()
    failed: str | None = None
    with tempfile.TemporaryDirectory(prefix="mb-scale-out-bench-") as tmp:
        try:
            asyncio.run(run(args, Path(tmp), res))
        except BenchFailed as exc:
            failed = str(exc)
        except KeyboardInterrupt:
            failed = "interrupted (Ctrl-C)"
        except Exception:
            failed = traceback.format_exc()
        finally:
            for w in BenchWorker.started:  # normally stopped already; after Ctrl-C maybe not
                w.kill_now()
    if failed:
        print(f"\nRUN FAILED: {failed}")
    print_table(res)
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s; client, workers, their "
          f"containers, broker and MLflow all ran on this machine.")
    wrong = any(p.mismatches or p.failed for p in res.phases)
    if failed or wrong or len(res.phases) < 2:
        sys.exit(1)


if __name__ == "__main__":
    main()
