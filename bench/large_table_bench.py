"""Large-table bench: score a Parquet file of millions of rows through Kafka, chunked.

Starts a Tansu broker and an MLflow server (free ports, temporary directory), runs discovery
and catalog in-process and a worker in a process of its own on a private topic prefix, as
bench/throughput_bench.py does (its helpers are reused), and registers bench/linear4_model.py
(``y = a + 2b + 3c + 4d`` on four doubles, tagged ``datagrok``). It writes a Parquet file of
N rows x 4 random doubles (numpy ``default_rng(0)``) and measures, in the same run:

1. in-process ``pyfunc`` predict of the registered version over the file: the whole table
   (read + predict) and batch by batch (``iter_batches(batch_size=32768)``);
2. ``modelbus predict --model NAME IN.parquet -o OUT.parquet --quiet`` as a child process:
   wall time and the peak RSS of that child alone (``os.wait4``).

The output is checked against the input (row count, ``y`` row by row with ``allclose``).
The speed and memory targets (>= 1,000,000 rows/s, < 1 GiB client RSS) are reported as text;
the exit code is non-zero only when the run failed or the output was wrong.

    .venv/bin/python bench/large_table_bench.py [--rows N] [--window N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.models import infer_signature

# The bench directory is on sys.path when this file is run as a script.
from throughput_bench import (
    COLD_TIMEOUT_S,
    HERE,
    REQUIREMENTS,
    WorkerProcess,
    depset_status,
    load,
    start_servers,
    wait_in_catalog,
)

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery
from modelbus_client.chunked_predict import DEFAULT_WINDOW
from modelbus_client.chunking import rows_per_chunk
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import configure_logging
from modelbus_worker.images.docker_build import docker_client
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.settings import ContainerSettings

DEFAULT_ROWS = 10_000_000
COLUMNS = ("a", "b", "c", "d")
WEIGHTS = (1.0, 2.0, 3.0, 4.0)  # y = a + 2b + 3c + 4d
WRITE_ROWS = 1 << 20  # rows generated and written at a time (one row group each)
BATCH_ROWS = 32_768  # in-process batch-by-batch baseline
CHECK_ROWS = 1 << 20  # rows compared at a time
TARGET_ROWS_S = 1_000_000
TARGET_RSS_MIB = 1024
MIB = 1024 * 1024


# ---------------------------------------------------------------- model and input

def log_linear4_model(tracking_uri: str, name: str) -> str:
    """Log bench/linear4_model.py from code, register it tagged datagrok; its version."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("large-table-bench")
    sample = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, -1.0], "c": [0.0, 1.0], "d": [2.0, 0.25]})
    answer = pd.DataFrame({"y": expected_y(sample)})
    with mlflow.start_run(run_name="linear4"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(HERE / "linear4_model.py"),
            signature=infer_signature(sample, answer), pip_requirements=REQUIREMENTS,
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name, tags={"datagrok": ""})
    mv = client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


def expected_y(columns: Any) -> np.ndarray:
    """``a + 2b + 3c + 4d`` of a DataFrame or a mapping of column name to array."""
    a, b, c, d = (np.asarray(columns[k], dtype=np.float64) for k in COLUMNS)
    return a + 2.0 * b + 3.0 * c + 4.0 * d


def write_input(path: Path, rows: int) -> None:
    """N rows x 4 random doubles (``default_rng(0)``), written a row group at a time."""
    rng = np.random.default_rng(0)
    schema = pa.schema([pa.field(k, pa.float64()) for k in COLUMNS])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            block = rng.random((min(WRITE_ROWS, rows - start), len(COLUMNS)))
            table = pa.table({k: block[:, i] for i, k in enumerate(COLUMNS)}, schema=schema)
            writer.write_table(table, row_group_size=WRITE_ROWS)


def chunk_rows(path: Path, settings: ModelbusSettings) -> int:
    """Rows per request the CLI chooses for this file (the same rule, for the printout)."""
    sample = pq.ParquetFile(path).read_row_group(0).slice(0, 4096)
    return rows_per_chunk(sample, settings.max_message_bytes, settings.max_request_rows)


# ---------------------------------------------------------------- in-process baseline

@dataclass
class Baseline:
    whole_s: float = 0.0  # read + to_pandas + predict of the whole table
    whole_predict_s: float = 0.0  # predict alone
    batches_s: float = 0.0  # iter_batches(BATCH_ROWS), to_pandas + predict each


def in_process_predict(model_uri: str, path: Path) -> Baseline:
    """In-process ``pyfunc`` predict over the file, whole and batch by batch."""
    model = mlflow.pyfunc.load_model(model_uri)
    model.predict(pd.DataFrame({k: [1.0] for k in COLUMNS}))  # warm-up
    res = Baseline()
    t0 = time.perf_counter()
    frame = pq.read_table(path).to_pandas()
    t1 = time.perf_counter()
    model.predict(frame)
    t2 = time.perf_counter()
    res.whole_s, res.whole_predict_s = t2 - t0, t2 - t1
    del frame
    t0 = time.perf_counter()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        model.predict(batch.to_pandas())
    res.batches_s = time.perf_counter() - t0
    return res


# ---------------------------------------------------------------- the CLI as a child process

# Linux keeps the peak RSS across execve: a child exec'd straight from this process would
# report at least this process's own peak (the in-process baseline's gigabyte). A small
# launcher (python -S, a few MiB) is started instead; it forks and execs the client, reaps
# it with os.wait4 and writes the client's own ru_maxrss (KiB), exit code and wall time.
LAUNCHER = """\
import os, signal, sys, time
report, argv = sys.argv[1], sys.argv[2:]
pid = 0
signal.signal(signal.SIGINT, lambda *_: None)  # a Ctrl-C reaches the client itself
signal.signal(signal.SIGTERM, lambda *_: pid and os.kill(pid, signal.SIGTERM))
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)  # handlers revert to the defaults
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
with open(report, "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {seconds}\\n")
"""


@dataclass
class ClientRun:
    argv: list[str]
    seconds: float = 0.0  # the client's wall time, exec to exit
    returncode: int | None = None
    max_rss_kib: int = 0  # ru_maxrss of the client process alone (KiB on Linux)
    stdout: str = ""
    stderr: str = ""


def modelbus_command() -> list[str]:
    """The ``modelbus`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "modelbus"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelbus"]


class ClientProcess:
    """``modelbus predict … -o OUT`` as a grandchild under ``LAUNCHER``; ``wait`` blocks."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.run = ClientRun(argv)
        self.env = env
        self.out_path, self.err_path = log_dir / "client.stdout", log_dir / "client.stderr"
        self.report_path = log_dir / "client.rusage"
        self.proc: subprocess.Popen[bytes] | None = None

    def wait(self) -> ClientRun:
        """Run the client to its end: wall time, exit code and peak RSS of the client."""
        launcher = [sys.executable, "-S", "-c", LAUNCHER, str(self.report_path), *self.run.argv]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(launcher, env=self.env, stdout=out, stderr=err)
        _, status, _ = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.run.stdout = self.out_path.read_text(errors="replace").strip()
        self.run.stderr = self.err_path.read_text(errors="replace").strip()
        if self.proc.returncode != 0 or not self.report_path.exists():
            raise RuntimeError(f"the launcher of the client exited {self.proc.returncode}: "
                               f"{self.run.stderr[-2000:]}")
        rss, code, seconds = self.report_path.read_text().split()
        self.run.max_rss_kib, self.run.returncode = int(rss), int(code)
        self.run.seconds = float(seconds)
        return self.run

    def kill(self) -> None:
        """On errors and Ctrl-C: stop a client still running (the launcher passes it on)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()


def client_env(settings: ModelbusSettings) -> dict[str, str]:
    return {
        **os.environ,
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
    }


# ---------------------------------------------------------------- checking the output

def rechunk(arrays: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The concatenated stream re-cut into arrays of ``size`` (the last may be shorter)."""
    pending: list[np.ndarray] = []
    held = 0
    for array in arrays:
        pending.append(array)
        held += len(array)
        while held >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, held = [joined[size:]], held - size
    if held:
        yield np.concatenate(pending)


def wanted(path: Path) -> Iterator[np.ndarray]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHECK_ROWS, columns=COLUMNS):
        yield expected_y({k: batch.column(k).to_numpy() for k in COLUMNS})


def answered(path: Path) -> Iterator[np.ndarray]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHECK_ROWS, columns=["y"]):
        yield batch.column("y").to_numpy(zero_copy_only=False)  # nulls become NaN


def check_output(input_path: Path, output_path: Path) -> str | None:
    """None when the output has the input's rows and ``y = a + 2b + 3c + 4d`` for each."""
    if not output_path.exists():
        return f"no output file {output_path.name}"
    rows_in = pq.ParquetFile(input_path).metadata.num_rows
    rows_out = pq.ParquetFile(output_path).metadata.num_rows
    if rows_out != rows_in:
        return f"{rows_out:,} rows in the output, {rows_in:,} in the input"
    if "y" not in pq.ParquetFile(output_path).schema_arrow.names:
        return f"no column y in the output: {pq.ParquetFile(output_path).schema_arrow.names}"
    start = 0
    pairs = zip(rechunk(wanted(input_path), CHECK_ROWS), rechunk(answered(output_path),
                                                                  CHECK_ROWS), strict=True)
    for want, got in pairs:
        bad = np.flatnonzero(~np.isclose(got, want))
        if bad.size:
            i = int(bad[0])
            return (f"row {start + i:,}: y = {float(got[i])!r}, want {float(want[i])!r} "
                    f"({bad.size:,} mismatches in rows {start:,}-{start + len(want) - 1:,})")
        start += len(want)
    return None


# ---------------------------------------------------------------- the run

@dataclass
class Results:
    rows: int
    window: int | None
    input_mib: float = 0.0
    write_s: float = 0.0
    chunk_rows: int = 0
    first_request_s: float = 0.0
    baseline: Baseline = field(default_factory=Baseline)
    client: ClientRun | None = None
    check: str | None = "not checked (no output)"
    loads: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.client is None or self.client.returncode != 0 or self.check is not None


@dataclass
class Stack:
    settings: ModelbusSettings
    name: str
    version: str


async def start_stack(stack: contextlib.AsyncExitStack, tmp: Path) -> Stack:
    """Broker, MLflow, discovery, catalog and a worker process; the model registered,
    in the catalog and answering."""
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-linear4-{run_id}"
    settings = start_servers(stack, tmp, f"bench-lt-{run_id}.")
    uri = settings.mlflow_tracking_uri
    print(f"dependency-set image of the model: "
          f"{depset_status(ContainerPool(ContainerSettings(), docker_client(), uri))}", flush=True)
    version = await asyncio.to_thread(log_linear4_model, uri, name)
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    worker = WorkerProcess(settings, tmp / "worker.log")
    view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
    for service in (discovery, catalog, worker, view):
        await service.start()
        stack.push_async_callback(service.stop)
    await wait_in_catalog(view, f"{name}/{version}")
    return Stack(settings, name, version)


async def warm_up(s: Stack) -> float:
    """Seconds of the first small request (files downloaded, container started)."""
    table = pa.table({k: [1.0, 2.0, 3.0] for k in COLUMNS})
    async with AsyncModelbusClient(settings=s.settings) as bus:
        t0 = time.perf_counter()
        got = await bus.predict(s.name, table, s.version, COLD_TIMEOUT_S)
        seconds = time.perf_counter() - t0
    if got.column("y").to_pylist() != [10.0, 20.0, 30.0]:
        raise RuntimeError(f"warm-up answer is wrong: {got.to_pydict()}")
    return seconds


async def run(args: argparse.Namespace, tmp: Path, res: Results) -> None:
    input_path, output_path = tmp / "input.parquet", tmp / "output.parquet"
    async with contextlib.AsyncExitStack() as stack:
        s = await start_stack(stack, tmp)
        res.first_request_s = await warm_up(s)
        print(f"{s.name} v{s.version}: first request {res.first_request_s:.1f} s", flush=True)

        t0 = time.perf_counter()
        await asyncio.to_thread(write_input, input_path, res.rows)
        res.write_s = time.perf_counter() - t0
        res.input_mib = input_path.stat().st_size / MIB
        res.chunk_rows = chunk_rows(input_path, s.settings)
        print(f"input: {res.rows:,} rows x {len(COLUMNS)} doubles, {res.input_mib:,.1f} MiB "
              f"Parquet, written in {res.write_s:.1f} s", flush=True)

        res.loads.append(load())
        model_uri = f"models:/{s.name}/{s.version}"
        res.baseline = await asyncio.to_thread(in_process_predict, model_uri, input_path)
        print(f"in-process predict done (load {res.loads[-1]})", flush=True)

        argv = [*modelbus_command(), "predict", "--model", s.name, str(input_path),
                "-o", str(output_path), "--quiet"]
        if args.window is not None:
            argv += ["--window", str(args.window)]
        child = ClientProcess(argv, client_env(s.settings), tmp)
        stack.callback(child.kill)  # runs first on the way out
        res.loads.append(load())
        print(f"running modelbus predict ({res.rows:,} rows, about "
              f"{-(-res.rows // res.chunk_rows):,} requests of {res.chunk_rows:,} rows) ...",
              flush=True)
        res.client = await asyncio.to_thread(child.wait)
        res.loads.append(load())
        if res.client.returncode == 0 or output_path.exists():
            res.check = await asyncio.to_thread(check_output, input_path, output_path)
        print("stopping ...", flush=True)


# ---------------------------------------------------------------- printing

def print_environment(args: argparse.Namespace) -> None:
    versions = ", ".join(f"{p} {dist_version(p)}" for p in
                         ("mlflow", "pyarrow", "aiokafka", "pandas", "numpy"))
    source = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"machine: nproc={os.cpu_count()} {platform.platform()}; python "
          f"{platform.python_version()}; load {load()}")
    print(f"modelbus commit {commit or '?'}; versions: {versions}")
    flags = (f" --rows {args.rows}" if args.rows != DEFAULT_ROWS else "") + (
        f" --window {args.window}" if args.window is not None else "")
    print(f"rerun: .venv/bin/python bench/large_table_bench.py{flags}", flush=True)


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("nan")


def ratio(mine: float, base: float) -> str:
    return f"{mine / base:.3g}x" if base > 0 and not math.isnan(mine) else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(res: Results) -> None:
    b, n = res.baseline, res.rows
    whole, whole_predict, batches = (rate(n, b.whole_s), rate(n, b.whole_predict_s),
                                     rate(n, b.batches_s))
    print(f"\n| figure ({n:,} rows x 4 doubles, {res.input_mib:,.1f} MiB Parquet) | value |")
    print("|---|---|")
    print(f"| in-process predict, whole table (read + predict) | {whole:,.0f} rows/s "
          f"({b.whole_s:.2f} s; predict alone {whole_predict:,.0f} rows/s) |")
    print(f"| in-process predict, batches of {BATCH_ROWS:,} (read + predict) | "
          f"{batches:,.0f} rows/s ({b.batches_s:.2f} s) |")
    c = res.client
    if c is None:
        print("| modelbus predict -o | not run |")
        return
    e2e = rate(n, c.seconds) if c.returncode == 0 else float("nan")
    rss_mib = c.max_rss_kib / 1024
    window = res.window if res.window is not None else f"{DEFAULT_WINDOW} (default)"
    speed = f"{e2e:,.0f} rows/s" if c.returncode == 0 else f"FAILED (exit {c.returncode})"
    print(f"| `modelbus predict -o` end to end (child process, start to exit) | {speed} "
          f"({c.seconds:.1f} s; window {window}; requests of {res.chunk_rows:,} rows) |")
    print(f"| ratio to in-process predict | {ratio(e2e, whole)} of whole table, "
          f"{ratio(e2e, batches)} of batches |")
    print(f"| peak RSS of the client process | {rss_mib:,.0f} MiB |")
    print(f"| target >= {TARGET_ROWS_S:,} rows/s end to end | {verdict(e2e >= TARGET_ROWS_S)} |")
    print(f"| target < 1 GiB client memory | {verdict(rss_mib < TARGET_RSS_MIB)} |")
    print(f"| output check (row count, y = a + 2b + 3c + 4d, allclose) | "
          f"{'OK' if res.check is None else 'FAILED: ' + res.check} |")
    print(f"\nclient summary line: {c.stdout or '(none)'}")
    if c.returncode != 0 and c.stderr:
        print(f"client stderr (last 2000 characters):\n{c.stderr[-2000:]}")
    print(f"first request of the version {res.first_request_s:.1f} s; load averages "
          f"(1/5/15 min) before the baseline, before and after the client: "
          f"{', '.join(res.loads)}")


# ---------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, metavar="N",
                        help=f"rows of the input file (default {DEFAULT_ROWS:,})")
    parser.add_argument("--window", type=int, default=None, metavar="N",
                        help="passed to modelbus predict --window (default: its own)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (input, output, logs)")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def quiet_logging() -> None:
    configure_logging("ERROR")
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


def main() -> None:
    args = parse_args()
    quiet_logging()
    print_environment(args)
    res = Results(args.rows, args.window)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="mb-large-table-bench-"))
    try:
        asyncio.run(run(args, tmp, res))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(res)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s (bench process peak RSS "
          f"{own:,.0f} MiB); everything ran on this machine at once (client, worker, broker, "
          f"MLflow), so CPU contention is part of every figure.")
    if res.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
