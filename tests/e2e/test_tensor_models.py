"""Models with tensor signatures end to end: an ONNX model logged from numpy arrays and a
pyfunc with two named tensor inputs, registered with MLflow's own API, catalogued with
dtype and shape, and answered through the real worker and containers.

A stack of its own (discovery, catalog, worker on fresh topics) with only these two models;
they share one dependency image (the ONNX model's requirements, as MLflow wrote them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import onnxruntime
import pyarrow as pa
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from onnx import TensorProto, helper, numpy_helper
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.errors import SchemaMismatch
from modelbus_contract.messages import CatalogEntry
from modelbus_worker.batching import BatchingPredictor
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings

from .conftest import WARM_UP_TIMEOUT_S, stack_settings

pytestmark = pytest.mark.integration

ONNX_MODEL = "test-tensor-onnx"
PYFUNC_MODEL = "test-tensor-pyfunc"
RNG = np.random.default_rng(7)
W = RNG.normal(size=(10, 3)).astype(np.float32)
B = RNG.normal(size=3).astype(np.float32)


def linear_onnx() -> onnx.ModelProto:
    """y = x @ W + b, x float32 [N, 10], y float32 [N, 3]."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime of the last years
    onnx.checker.check_model(model)
    return model


def onnxruntime_answer(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = onnxruntime.InferenceSession(
        linear_onnx().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(None, {"x": x})[0])


def floats10(x: np.ndarray[Any, Any]) -> pa.Array:
    """A [N, 10] array as the fixed_size_list column docs/concepts/registering.md shows."""
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def two_tensor_prediction(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> Any:
    """What the two-tensor model computes: per row, b's row sums times a (outer product)."""
    return b.sum(axis=2).astype(np.float64)[:, :, None] * a[:, None, :]


def pyfunc_inputs(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 3)), rng.normal(size=(rows, 2, 2)).astype(np.float32)


def pyfunc_table(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> pa.Table:
    return pa.table({
        "a": pa.array(a.tolist(), pa.list_(pa.float64(), 3)),
        "b": pa.array(b.tolist(), pa.list_(pa.list_(pa.float32(), 2), 2)),
    })


def _register(client: MlflowClient, name: str, info: Any) -> str:
    client.create_registered_model(name, tags={"datagrok": ""})
    mv = client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


def register_tensor_models(tracking_uri: str) -> tuple[str, str]:
    """The ONNX model (signature inferred from numpy arrays) and the two-tensor pyfunc."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    x = RNG.normal(size=(4, 10)).astype(np.float32)
    with mlflow.start_run(run_name="tensor-onnx"):
        onnx_info = mlflow.onnx.log_model(
            linear_onnx(), name="model", input_example=x,
            signature=infer_signature(x, onnxruntime_answer(x)),
        )
    requirements = Path(mlflow.pyfunc.get_model_dependencies(onnx_info.model_uri)).read_text()
    a, b = pyfunc_inputs(2, seed=0)
    with mlflow.start_run(run_name="tensor-pyfunc"):
        pyfunc_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).parent / "models" / "tensor_model.py"),
            input_example={"a": a, "b": b},
            signature=infer_signature({"a": a, "b": b}, two_tensor_prediction(a, b)),
            pip_requirements=requirements.split(),  # the ONNX model's: one dependency image
        )
    return _register(client, ONNX_MODEL, onnx_info), _register(client, PYFUNC_MODEL, pyfunc_info)


@dataclass
class TensorStack:
    worker: WorkerService
    client: AsyncModelbusClient
    onnx_version: str
    pyfunc_version: str

    def entry(self, name: str, version: str) -> CatalogEntry:
        return self.worker.catalog.entries[f"{name}/{version}"]


@pytest.fixture(scope="module")
async def tensor_stack(
    kafka_bootstrap: str, mlflow_tracking_uri: str, docker_client: Any
) -> AsyncIterator[TensorStack]:
    previous = mlflow.get_tracking_uri()
    try:
        onnx_version, pyfunc_version = register_tensor_models(mlflow_tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    settings = stack_settings(kafka_bootstrap, mlflow_tracking_uri)
    pool = ContainerPool(ContainerSettings(max_containers=4), docker_client, mlflow_tracking_uri)
    worker = build_worker(settings, pool)
    async with contextlib.AsyncExitStack() as running:
        for service in (build_discovery(settings), build_catalog(settings), worker):
            await service.start()
            running.push_async_callback(service.stop)
        versions = {ONNX_MODEL: onnx_version, PYFUNC_MODEL: pyfunc_version}
        await async_wait_for(
            lambda: all(f"{n}/{v}" in worker.catalog.entries for n, v in versions.items()),
            60, message="both tensor models in the worker's catalog view",
        )
        for name, version in versions.items():
            await asyncio.wait_for(pool.warm(name, version), WARM_UP_TIMEOUT_S)
        client = await running.enter_async_context(AsyncModelbusClient(settings=settings))
        yield TensorStack(worker, client, onnx_version, pyfunc_version)


def _described(entry: CatalogEntry, side: str) -> list[dict[str, Any]]:
    return [p.model_dump(exclude={"index", "semtype", "optional"})
            for p in getattr(entry, side)]


async def test_onnx_model_from_numpy_arrays_is_catalogued_with_dtype_shape_and_names(
    tensor_stack: TensorStack,
) -> None:
    entry = tensor_stack.entry(ONNX_MODEL, tensor_stack.onnx_version)
    assert (entry.status, entry.problems) == ("ready", [])
    assert _described(entry, "inputs") == [{
        "name": "input", "type": "tensor", "dtype": "float32", "shape": [-1, 10],
        "arrow_type": "fixed_size_list<item: float>[10]",
    }]
    assert _described(entry, "outputs") == [{
        "name": "output", "type": "tensor", "dtype": "float32", "shape": [-1, 3],
        "arrow_type": "fixed_size_list<item: float>[3]",
    }]


async def test_onnx_model_answers_exactly_what_onnxruntime_computes(
    tensor_stack: TensorStack,
) -> None:
    x = np.random.default_rng(11).normal(size=(5, 10)).astype(np.float32)
    expected = onnxruntime_answer(x)
    got = await tensor_stack.client.predict(
        ONNX_MODEL, pa.table({"input": floats10(x)}), version=tensor_stack.onnx_version
    )
    assert got.schema == pa.schema([("output", pa.list_(pa.float32(), 3))])
    assert np.array_equal(np.array(got.column("output").to_pylist(), np.float32), expected)
    # The client turns a numpy array into the same column.
    got = await tensor_stack.client.predict(ONNX_MODEL, {"input": x},
                                            version=tensor_stack.onnx_version)
    assert np.array_equal(np.array(got.column("output").to_pylist(), np.float32), expected)
    # Plain lists of doubles are accepted too: cast to float32 by the worker.
    as_lists = pa.table({"input": pa.array(x.astype(np.float64).tolist())})
    got = await tensor_stack.client.predict(ONNX_MODEL, as_lists, version=tensor_stack.onnx_version)
    assert np.array_equal(np.array(got.column("output").to_pylist(), np.float32), expected)


async def test_onnx_model_refuses_rows_of_the_wrong_length(tensor_stack: TensorStack) -> None:
    takes = "(the model takes input: tensor float32 [-1, 10] as fixed_size_list<item: float>[10])"
    nine = pa.table({"input": floats10(np.zeros((2, 9), np.float32))})
    with pytest.raises(SchemaMismatch) as err:
        await tensor_stack.client.predict(ONNX_MODEL, nine, version=tensor_stack.onnx_version)
    assert err.value.message == (
        "wrong types: 'input' is fixed_size_list<item: float>[9], expected "
        f"fixed_size_list<item: float>[10] {takes}"
    )
    short_row = pa.table({"input": pa.array([[1.0] * 10, [1.0] * 9])})
    with pytest.raises(SchemaMismatch) as err:
        await tensor_stack.client.predict(ONNX_MODEL, short_row, version=tensor_stack.onnx_version)
    assert err.value.message == f"wrong types: row 1 of 'input' holds 9 values, expected 10 {takes}"


async def test_pyfunc_with_two_named_tensors_is_catalogued_and_answered(
    tensor_stack: TensorStack,
) -> None:
    entry = tensor_stack.entry(PYFUNC_MODEL, tensor_stack.pyfunc_version)
    assert (entry.status, entry.problems) == ("ready", [])
    assert [(p.name, p.dtype, p.shape) for p in entry.inputs] == [
        ("a", "float64", [-1, 3]), ("b", "float32", [-1, 2, 2])
    ]
    assert [(p.name, p.dtype, p.shape) for p in entry.outputs] == [
        ("output", "float64", [-1, 2, 3])
    ]
    a, b = pyfunc_inputs(4, seed=1)
    got = await tensor_stack.client.predict(
        PYFUNC_MODEL, pyfunc_table(a, b), version=tensor_stack.pyfunc_version
    )
    assert got.schema == pa.schema([("output", pa.list_(pa.list_(pa.float64(), 3), 2))])
    assert got.column("output").to_pylist() == two_tensor_prediction(a, b).tolist()


async def test_concurrent_tensor_requests_are_batched_and_each_gets_its_rows(
    tensor_stack: TensorStack,
) -> None:
    batching = tensor_stack.worker.predictor
    assert isinstance(batching, BatchingPredictor)
    before = batching.batches
    inputs = [pyfunc_inputs(rows, seed=rows) for rows in (1, 3)]
    # Two requests sent together usually land in one poll, so one batch; every round is
    # answered correctly until one did.
    for _ in range(20):
        answers = await asyncio.gather(*(
            tensor_stack.client.predict(PYFUNC_MODEL, pyfunc_table(a, b),
                                        version=tensor_stack.pyfunc_version)
            for a, b in inputs
        ))
        for (a, b), got in zip(inputs, answers, strict=True):
            assert got.column("output").to_pylist() == two_tensor_prediction(a, b).tolist()
        if batching.batches > before:
            break
    assert batching.batches > before
    assert batching.row_wise(PYFUNC_MODEL, tensor_stack.pyfunc_version)
