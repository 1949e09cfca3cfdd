"""Benchmark the container pool against in-process pyfunc prediction.

Prints cold-start times (model files downloaded vs cached; no standby runtime in either),
the warm 1-row round trip (median/p99) and rows/s for a 10,000-row request, each beside the
same model's in-process ``predict``. Needs a running Docker engine; uses a throw-away SQLite
registry.

    .venv/bin/python bench/containers_bench.py [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa

from modelbus_delivery.logs import configure_logging
from modelbus_worker.images.docker_build import docker_client
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.runtime.arrow_io import prediction_to_table
from modelbus_worker.settings import ContainerSettings

MODEL_CODE = '''
import mlflow.pyfunc, pandas as pd
class Linear(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"y": model_input["a"] * 2.0 + model_input["b"],
                             "tag": model_input["s"].str.upper()})
mlflow.models.set_model(Linear())
'''


def register(root: Path) -> tuple[str, str]:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    (root / "model_code.py").write_text(MODEL_CODE)
    exp = mlflow.create_experiment("bench", artifact_location=(root / "art").as_uri())
    name = f"bench-{uuid.uuid4().hex[:6]}"
    example = pd.DataFrame({"a": [1.0], "b": [2.0], "s": ["x"]})
    reqs = [f"mlflow=={mlflow.__version__}", f"pandas=={pd.__version__}",
            f"pyarrow=={pa.__version__}"]
    with mlflow.start_run(experiment_id=exp):
        mlflow.pyfunc.log_model(name="model", python_model=str(root / "model_code.py"),
                                input_example=example, pip_requirements=reqs,
                                registered_model_name=name)
    return uri, name


def table_of(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({"a": rng.random(rows), "b": rng.random(rows),
                     "s": [f"s{i % 97}" for i in range(rows)]})


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


async def atimed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


def fresh_process_load(uri: str, name: str) -> float:
    """Seconds for a new Python process to import mlflow and load the model."""
    code = f"import mlflow.pyfunc; mlflow.pyfunc.load_model('models:/{name}/1')"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


async def main(requests: int) -> None:
    configure_logging("WARNING")
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="mb-bench-") as tmp:
        uri, name = register(Path(tmp))
        settings = ContainerSettings()
        one, big = table_of(1), table_of(10_000)

        local = mlflow.pyfunc.load_model(f"models:/{name}/1")
        local_load = fresh_process_load(uri, name)

        def in_process(table: pa.Table) -> pa.Table:
            return prediction_to_table(local.predict(table.to_pandas()))

        async with ContainerPool(settings, docker_client(), uri) as pool:
            t0 = time.perf_counter()
            await pool.warm(name, "1")
            cold_build = time.perf_counter() - t0
        async with ContainerPool(settings, docker_client(), uri) as pool:
            t0 = time.perf_counter()
            await pool.warm(name, "1")
            cold_cached = time.perf_counter() - t0
            assert (await pool.predict(name, "1", big)).equals(in_process(big))
            for _ in range(20):  # warm up both paths
                await pool.predict(name, "1", one)
                in_process(one)
            pool_1 = percentiles(await atimed(lambda: pool.predict(name, "1", one), requests))
            local_1 = percentiles(timed(lambda: in_process(one), requests))
            pool_big = statistics.median(await atimed(lambda: pool.predict(name, "1", big), 10))
            local_big = statistics.median(timed(lambda: in_process(big), 10))


    ms = 1e3
    print(f"{'measure':<44}{'container':>14}{'in-process':>14}{'ratio':>8}")
    rows = [
        ("cold start, files downloaded (depset cached)", cold_build, local_load, "s"),
        ("cold start, files cached, new pool", cold_cached, local_load, "s"),
        ("1-row round trip, median", pool_1[0] * ms, local_1[0] * ms, "ms"),
        ("1-row round trip, p99", pool_1[1] * ms, local_1[1] * ms, "ms"),
        ("10,000 rows, rows/s", 10_000 / pool_big, 10_000 / local_big, "rows/s"),
    ]
    for label, container, process, unit in rows:
        print(f"{label:<44}{container:>11.2f} {unit:<2}{process:>11.2f} {unit:<2}"
              f"{container / process:>7.2f}x")
    print("(in-process cold start = a fresh Python process importing mlflow and loading)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args().requests))
