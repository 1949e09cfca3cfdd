"""Heavy flavors (issue 7): image size, first request and warm latency of xgboost (and,
when asked, pytorch) models served through the whole stack. Not run in CI.

Starts a Tansu broker and an MLflow server (free ports, temporary directory), runs
discovery, catalog and a worker in-process on a private topic prefix, logs each model with
MLflow's own flavor API (``mlflow.xgboost.log_model``, ``mlflow.pytorch.log_model``: the
requirements MLflow infers, e.g. ``xgboost==X`` whose wheel pulls ``nvidia-nccl-cu12``),
registers it tagged ``datagrok`` and prints per model: the runtime image's size, the
first request (files, wheels, dependency-set and runtime images, container, load) and
the p50 of warm one-row requests. The worker's usual cache directory is used, so a second
run finds the images built (the first request then shows a cold start without builds).

The host needs the flavor's package only to log the model: it is installed with
``pip install --target`` into the bench's own cache directory
(``~/.cache/modelbus/bench-heavy``), never into the project's environment. PyPI's torch
wheel pulls several GB of CUDA libraries (on the host and into the image); a CPU-only
index can be given to both with ``MODELBUS_PIP_INDEX_URL`` / ``PIP_INDEX_URL`` where one is
reachable. See bench/README.md.

    .venv/bin/python bench/heavy_flavors_bench.py                       # xgboost
    .venv/bin/python bench/heavy_flavors_bench.py --flavors xgboost,pytorch --warm 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = Path("~/.cache/modelbus/bench-heavy").expanduser()
COLD_TIMEOUT_S = 3600.0  # wheels of a heavy flavor and its image build may take minutes
TIMEOUT_S = 60.0
FEATURES = 4


@dataclass
class Measured:
    flavor: str
    model: str
    requirements: list[str]
    image: str = "?"
    image_bytes: int = 0
    depset_cached: bool = False
    first_s: float = float("nan")
    warm_p50_ms: float = float("nan")
    warm_p99_ms: float = float("nan")
    error: str = ""


def ensure_host_package(module: str, spec: str, no_deps: bool) -> None:
    """Import ``module``, installing ``spec`` into the bench's cache first if missing."""
    site = CACHE / f"site-py{sys.version_info.major}.{sys.version_info.minor}"
    sys.path.insert(0, str(site))
    try:
        importlib.import_module(module)
        return
    except ImportError:
        pass
    print(f"installing {spec} into {site} (only to log the model) ...", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
           "--target", str(site), *(["--no-deps"] if no_deps else []), spec]
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()
    importlib.import_module(module)


def training_data() -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(200, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)])
    y = x["f0"] * 2.0 - x["f1"] + rng.normal(scale=0.1, size=len(x))
    return x, y


def log_xgboost(tracking_uri: str, name: str) -> None:
    """An XGBRegressor on 4 double columns, logged with ``mlflow.xgboost``."""
    # xgboost's own dependencies (numpy, scipy) are the project's; its NCCL is for GPUs.
    ensure_host_package("xgboost", "xgboost", no_deps=True)
    import mlflow
    import xgboost  # type: ignore[import-not-found,unused-ignore]
    from mlflow.models import infer_signature

    x, y = training_data()
    model = xgboost.XGBRegressor(n_estimators=50, max_depth=4).fit(x, y)
    signature = infer_signature(x, model.predict(x))
    with mlflow.start_run(run_name=name):
        mlflow.xgboost.log_model(model, name="model", signature=signature,
                                 registered_model_name=name)


def log_pytorch(tracking_uri: str, name: str) -> None:
    """A linear torch module on 4 double columns, logged with ``mlflow.pytorch``."""
    ensure_host_package("torch", "torch", no_deps=False)
    import mlflow
    import numpy as np
    import torch  # type: ignore[import-not-found,unused-ignore]
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    model = torch.nn.Linear(FEATURES, 1).double()
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f"f{i}") for i in range(FEATURES)]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 1))]),
    )
    with mlflow.start_run(run_name=name):
        mlflow.pytorch.log_model(model, name="model", signature=signature,
                                 registered_model_name=name)


LOGGERS: dict[str, Callable[[str, str], None]] = {
    "xgboost": log_xgboost, "pytorch": log_pytorch,
}


def request_table() -> Any:
    import pyarrow as pa

    return pa.table({f"f{i}": pa.array([0.1 * (i + 1)], pa.float64()) for i in range(FEATURES)})


def register(tracking_uri: str, flavor: str, name: str) -> list[str]:
    """Log and register one model tagged for discovery; its pip requirements."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment("heavy-flavors-bench")
    LOGGERS[flavor](tracking_uri, name)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_tag(name, "datagrok", "")
    uri = client.get_model_version_download_uri(name, "1")
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
    return Path(local, "requirements.txt").read_text().split()


def runtime_image(docker_client: Any, key: str, since: float) -> tuple[str, int, bool]:
    """The tag and size of the image of this process's container serving ``key``, and
    whether its dependency-set image existed before ``since`` (seconds since the epoch)."""
    from modelbus_worker.pool.containers import LABEL_KEY, LABEL_OWNER, owner_id

    found = docker_client.containers.list(
        filters={"label": [f"{LABEL_OWNER}={owner_id()}", f"{LABEL_KEY}={key}"]})
    if not found:
        return "?", 0, False
    image = found[0].image
    depset = docker_client.images.get(image.labels["modelbus.depset"])
    created = datetime.fromisoformat(depset.attrs["Created"][:26].rstrip("Z") + "+00:00")
    return ((image.tags or [image.short_id])[0], int(image.attrs["Size"]),
            created.timestamp() < since)


@dataclass
class BenchStack:
    settings: Any  # ModelbusSettings
    pool: Any  # ContainerPool
    worker: Any  # WorkerService
    bus: Any  # AsyncModelbusClient


async def start_stack(
    stack: contextlib.AsyncExitStack, tmp: Path, prefix: str, container_settings: Any,
    max_timeout_s: float = TIMEOUT_S, docker_client: Any = None,
) -> BenchStack:
    """Broker and MLflow server (free ports, under ``tmp``), discovery, catalog, a worker
    and a client in this process on ``prefix``; all stopped by ``stack``."""
    from throughput_bench import start_servers

    from modelbus.client import AsyncModelbusClient
    from modelbus.wiring import assemble_worker, build_catalog, build_discovery
    from modelbus_worker.images.docker_build import docker_client as engine
    from modelbus_worker.pool.pool import ContainerPool

    settings = start_servers(stack, tmp, prefix, poll_interval_s=1.0)
    pool = ContainerPool(container_settings, engine(docker_client),
                         settings.mlflow_tracking_uri)
    # worker.stop() closes the pool
    worker = assemble_worker(settings, pool, max_timeout_s=max_timeout_s, containers=pool)
    discovery, catalog = build_discovery(settings), build_catalog(settings)
    bus = AsyncModelbusClient(settings=settings)
    for service, stop in ((discovery, discovery.stop), (catalog, catalog.stop),
                          (worker, worker.stop), (bus, bus.close)):
        await service.start()
        stack.push_async_callback(stop)
    return BenchStack(settings, pool, worker, bus)


async def measure(flavors: list[str], warm: int, tmp: Path) -> list[Measured]:
    import docker

    from modelbus_delivery.catalog_view import CatalogView
    from modelbus_worker.settings import ContainerSettings

    run_id = uuid.uuid4().hex[:8]
    results: list[Measured] = []
    docker_client = docker.from_env()
    async with contextlib.AsyncExitStack() as stack:
        # The first request waits for wheels and image builds: no 60 s request cap here.
        container_settings = ContainerSettings(request_timeout_s=COLD_TIMEOUT_S,
                                               start_timeout_s=COLD_TIMEOUT_S)
        services = await start_stack(stack, tmp, f"bench-heavy-{run_id}.", container_settings,
                                     COLD_TIMEOUT_S)
        settings, bus = services.settings, services.bus
        uri = settings.mlflow_tracking_uri
        view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
        await view.start()
        stack.push_async_callback(view.stop)
        for flavor in flavors:
            name = f"bench-{flavor}-{run_id}"
            result = Measured(flavor, name, [])
            results.append(result)
            try:
                result.requirements = await asyncio.to_thread(register, uri, flavor, name)
                key = f"{name}/1"

                def listed(entries: dict[str, Any], key: str = key) -> bool:
                    return key in entries

                if not await view.wait_until(listed, 120):
                    raise RuntimeError(f"{key} not in the catalog after 120 s")
                entry = view.entries[key]
                print(f"{key}: catalog {entry.status}"
                      + (f", problems {entry.problems}" if entry.problems else ""), flush=True)
                print(f"{name}: first request ...", flush=True)
                began = time.time()
                t0 = time.perf_counter()
                await bus.predict(name, request_table(), "1", COLD_TIMEOUT_S)
                result.first_s = time.perf_counter() - t0
                result.image, result.image_bytes, result.depset_cached = runtime_image(
                    docker_client, key, began)
                samples = []
                for _ in range(warm):
                    t0 = time.perf_counter()
                    await bus.predict(name, request_table(), "1", TIMEOUT_S)
                    samples.append(time.perf_counter() - t0)
                result.warm_p50_ms = statistics.median(samples) * 1e3
                result.warm_p99_ms = sorted(samples)[min(len(samples) - 1,
                                                         int(len(samples) * 0.99))] * 1e3
            except Exception as exc:  # reported in the table; the next flavor still runs
                result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            print(format_row(result), flush=True)
        print("stopping ...", flush=True)
    return results


def format_size(size: int) -> str:
    """Decimal units, as ``docker images`` prints them."""
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def format_row(r: Measured) -> str:
    if r.error:
        return f"| {r.flavor} | {r.model} | FAILED: {r.error} | | | |"
    build = "dependency-set + runtime image built" if not r.depset_cached else "images cached"
    return (f"| {r.flavor} | `{r.image}` | {format_size(r.image_bytes)} | "
            f"{r.first_s:.1f} s ({build}) | {r.warm_p50_ms:.1f} ms | {r.warm_p99_ms:.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flavors", default="xgboost",
                        help="comma-separated: xgboost, pytorch (default: xgboost)")
    parser.add_argument("--warm", type=int, default=50, help="warm one-row requests per model")
    args = parser.parse_args()
    flavors = [f.strip() for f in args.flavors.split(",") if f.strip()]
    unknown = set(flavors) - set(LOGGERS)
    if unknown:
        parser.error(f"unknown flavors {sorted(unknown)}; known: {sorted(LOGGERS)}")
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from modelbus_delivery.logs import configure_logging

    configure_logging(os.environ.get("MODELBUS_LOG_LEVEL", "WARNING"))
    with tempfile.TemporaryDirectory(prefix="modelbus-heavy-") as tmp:
        results = asyncio.run(measure(flavors, args.warm, Path(tmp)))
    print("\n| flavor | runtime image | image size | first request | warm p50 | warm p99 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(format_row(r))
    for r in results:
        print(f"{r.flavor} requirements: {' '.join(r.requirements)}")


if __name__ == "__main__":
    main()
