"""Every model a Datagrok user logs (issue 7's table): catalog, answer code, first request,
warm latency and image size per model, through the whole stack. Not run in CI.

Starts a Tansu broker and an MLflow server (free ports, temporary directory), runs
discovery, catalog and a worker in-process on a private topic prefix, logs each model with
MLflow's own API (the test suite's flavor-matrix loggers), registers it tagged ``datagrok``,
and sends it one request (the first: it may build images) and then ``--warm`` more. Models
"from Python 3.12 / 3.10" carry that version in their files (what such a model records);
the 3.13 one is saved by Python 3.13 inside a trixie container. ``--heavy`` adds xgboost
(see heavy_flavors_bench.py). The worker's usual cache directory is used, so a second run
shows first requests without builds.

    .venv/bin/python bench/flavor_table.py [--warm 20] [--heavy]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the test suite's model loggers
COLD_TIMEOUT_S = 3600.0


@dataclass
class Row:
    label: str
    name: str = ""
    version: str = "1"
    catalog: str = "?"
    code: str = "?"
    message: str = ""
    first_s: float = float("nan")
    warm_p50_ms: float = float("nan")
    image_bytes: int = 0


def numpy_pin_model(uri: str) -> tuple[str, str]:
    """A pyfunc from code recorded as logged by Python 3.12, pinning numpy==2.5.5 (wheels
    for 3.12 and later only)."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from tests.flavors.flavor_models import MODEL_CODE, artifacts_model, pinned, record_python

    sample = pd.DataFrame({"x": [1.0]})
    with tempfile.TemporaryDirectory(prefix="flavor-table-") as tmp:
        path = Path(tmp, "model")
        mlflow.pyfunc.save_model(
            str(path), python_model=str(MODEL_CODE / "scaled_model.py"),
            code_paths=[str(MODEL_CODE / "scale_helper.py")],
            signature=infer_signature(sample, pd.DataFrame({"y": [4.0]})),
            pip_requirements=[*pinned("pandas", "mlflow"), "numpy==2.5.5"])
        record_python(path, "3.12.3")
        return artifacts_model(uri, "table-numpy-pin", path)


def docopt_model(uri: str) -> tuple[str, str]:
    """sklearn with a requirement that has no wheel (docopt==0.6.2: a source distribution)."""
    import mlflow
    from sklearn.linear_model import LinearRegression
    from tests.flavors.flavor_models import X, Y, logged

    model = LinearRegression().fit(X, Y)
    return logged(uri, "table-docopt", lambda: mlflow.sklearn.log_model(
        model, name="model", extra_pip_requirements=["docopt==0.6.2"]))


def onnx_tensor_model(uri: str) -> tuple[str, str]:
    """ONNX y = x @ W + b logged from numpy arrays (a tensor signature)."""
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature
    from tests.e2e.test_tensor_models import linear_onnx, onnxruntime_answer
    from tests.flavors.flavor_models import logged

    x = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
    return logged(uri, "table-onnx-tensor", lambda: mlflow.onnx.log_model(
        linear_onnx(), name="model", input_example=x,
        signature=infer_signature(x, onnxruntime_answer(x))))


def rows(docker_client: Any, heavy: bool) -> list[tuple[str, Callable[[str], Any], Any]]:
    """(label, logger(uri) -> (name, version), request table) per model."""
    import numpy as np
    import pyarrow as pa
    from tests.flavors import flavor_models as fm
    from tests.flavors.other_python import python_model_logged_under

    from modelbus_worker.images.interpreter import Interpreter

    x_table = pa.Table.from_pandas(fm.X.iloc[:1])
    code_table = pa.table({"x": [1.0]})
    tensor = pa.table({"input": pa.FixedSizeListArray.from_arrays(
        pa.array(np.arange(10, dtype=np.float32) / 10), 10)})
    trixie = Interpreter("3.13", "2.41", suite="trixie")
    table: list[tuple[str, Callable[[str], Any], Any]] = [
        ("lightgbm", lambda uri: fm.lightgbm_regressor(uri)[:2], x_table),
        ("onnx, tensor signature (from numpy arrays)", onnx_tensor_model, tensor),
        ("sklearn, no signature, `datagrok-inputs-N-name` tags", lambda uri: fm.linear_sklearn(
            uri, False, {"datagrok-inputs-0-name": "a", "datagrok-inputs-1-name": "b"}),
         x_table),
        ("pyfunc with `code_paths`", fm.code_paths_model, code_table),
        ("sklearn logged from Python 3.12", lambda uri: fm.sklearn_logged_with(uri, "3.12.3"),
         x_table),
        ("`PythonModel` (cloudpickled) from Python 3.11", fm.python_model, x_table),
        ("`PythonModel` (cloudpickled) from Python 3.13", lambda uri: python_model_logged_under(
            docker_client, trixie, uri, "table-py313"), x_table),
        ("`PythonModel` (cloudpickled) from Python 3.12",
         lambda uri: fm.python_model(uri, "table-py312", "3.12.3"), x_table),
        ("`PythonModel` (cloudpickled) from Python 3.10",
         lambda uri: fm.python_model(uri, "table-py310", "3.10.14"), x_table),
        ("sklearn requiring `docopt==0.6.2` (no wheel)", docopt_model, x_table),
        ("pyfunc from 3.12 pinning `numpy==2.5.5`", numpy_pin_model, code_table),
    ]
    if heavy:
        from heavy_flavors_bench import ensure_host_package, log_xgboost, request_table

        def xgboost_model(uri: str) -> tuple[str, str]:
            ensure_host_package("xgboost", "xgboost", no_deps=True)
            name = f"table-xgboost-{uuid.uuid4().hex[:8]}"
            log_xgboost(uri, name)
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_tag(
                name, "datagrok", "")
            return name, "1"

        table.append(("xgboost", xgboost_model, request_table()))
    return table


def image_size(docker_client: Any, pool: Any, key: str) -> int:
    container = pool.running().get(key)
    return int(docker_client.containers.get(container).image.attrs["Size"]) if container else 0


async def measure(warm: int, heavy: bool, tmp: Path) -> list[Row]:
    import docker
    from heavy_flavors_bench import start_stack

    from modelbus_contract.errors import ModelbusError
    from modelbus_worker.settings import ContainerSettings

    docker_client = docker.from_env()
    results: list[Row] = []
    async with contextlib.AsyncExitStack() as stack:
        services = await start_stack(
            stack, tmp, f"bench-flavors-{uuid.uuid4().hex[:8]}.",
            ContainerSettings(max_containers=16), docker_client=docker_client)
        worker, pool, bus = services.worker, services.pool, services.bus
        uri = services.settings.mlflow_tracking_uri
        for label, log_model, request in rows(docker_client, heavy):
            row = Row(label)
            results.append(row)
            try:
                row.name, row.version = await asyncio.to_thread(log_model, uri)
            except Exception as exc:
                row.catalog = f"not logged: {type(exc).__name__}: {str(exc)[:150]}"
                print(format_row(row), flush=True)
                continue
            key = f"{row.name}/{row.version}"
            entries = worker.catalog.entries
            for _ in range(600):
                if key in entries:
                    break
                await asyncio.sleep(0.1)
            entry = entries.get(key)
            if entry is not None:
                problems = [p for p in entry.problems if not p.startswith("the model has no")]
                row.catalog = entry.status + (f"; {'; '.join(problems)}" if problems else "")
            t0 = time.perf_counter()
            try:
                await bus.predict(row.name, request, row.version, 60.0, wait=COLD_TIMEOUT_S)
                row.code = "ok"
            except ModelbusError as exc:
                row.code, row.message = exc.code, exc.message.splitlines()[0][:200]
            row.first_s = time.perf_counter() - t0
            if row.code == "ok":
                samples = []
                for _ in range(warm):
                    t0 = time.perf_counter()
                    await bus.predict(row.name, request, row.version, 60.0)
                    samples.append(time.perf_counter() - t0)
                row.warm_p50_ms = statistics.median(samples) * 1e3
                row.image_bytes = await asyncio.to_thread(image_size, docker_client, pool, key)
            if entry is not None and row.code != "ok":  # the worker's report, if any
                await asyncio.sleep(2)
                now = entries.get(key)
                worker_problems = [p for p in (now.problems if now else [])
                                   if p.startswith("worker:")]
                if worker_problems:
                    row.catalog += f" (then: {worker_problems[0][:120]})"
            print(format_row(row), flush=True)
    return results


def format_row(r: Row) -> str:
    size = f"{r.image_bytes / 1e9:.2f} GB" if r.image_bytes else "—"
    warm = f"{r.warm_p50_ms:.1f} ms" if r.code == "ok" else "—"
    code = r.code if r.code == "ok" else f"`{r.code}`: {r.message}"
    return f"| {r.label} | {r.catalog} | {code} | {r.first_s:.2f} s | {warm} | {size} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", type=int, default=20, help="warm requests per model")
    parser.add_argument("--heavy", action="store_true", help="add xgboost (minutes, ~1.6 GB)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from modelbus_delivery.logs import configure_logging

    configure_logging(os.environ.get("MODELBUS_LOG_LEVEL", "WARNING"))
    print("| model | catalog said | the request got | first request | warm p50 | image |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="modelbus-flavors-") as tmp:
        results = asyncio.run(measure(args.warm, args.heavy, Path(tmp)))
    print("\n| model | catalog said | the request got | first request | warm p50 | image |")
    print("|---|---|---|---|---|---|")
    for row in results:
        print(format_row(row))


if __name__ == "__main__":
    main()
