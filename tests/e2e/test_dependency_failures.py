"""Requirements that cannot be installed are the model's problem: ``model_unavailable``
with the decisive line first, remembered without another pip run, shown in the catalog."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.messages import CatalogEntry

from .conftest import InferenceStack

pytestmark = pytest.mark.integration

SCALE_MODEL = Path(__file__).parents[1] / "containers" / "models" / "scale_model.py"
DOCOPT = (
    "docopt==0.6.2: no wheel for Python 3.11 / manylinux_2_36_x86_64 "
    "(only a source distribution)"
)
ANSWER_WAIT_S = 600.0  # a first request resolves the wheels of a new dependency set


def _register(stack: InferenceStack, stem: str, info: mlflow.models.model.ModelInfo,
              versions: int) -> tuple[str, list[str]]:
    uri = stack.settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name, tags={"datagrok": ""})
    stack.more_models.append(name)
    made = [
        client.create_model_version(name, info.model_uri, run_id=info.run_id,
                                    model_id=info.model_id).version
        for _ in range(versions)
    ]
    return name, [str(v) for v in made]


async def _in_catalog(stack: InferenceStack, name: str, versions: list[str]) -> None:
    keys = [f"{name}/{v}" for v in versions]
    await async_wait_for(lambda: all(k in stack.worker.catalog.entries for k in keys), 60,
                         message=f"{keys} in the worker's catalog")


async def _entry_with_problem(stack: InferenceStack, key: str, problem: str) -> CatalogEntry:
    def shown() -> CatalogEntry | None:
        entry = stack.worker.catalog.entries.get(key)
        return entry if entry is not None and problem in entry.problems else None

    return await async_wait_for(shown, 60, message=f"the worker's problem in {key}'s entry")


async def test_a_requirement_without_a_wheel_is_model_unavailable_remembered_and_catalogued(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    from sklearn.linear_model import LogisticRegression

    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(features, np.array([0, 0, 1, 1]))
    mlflow.set_tracking_uri(inference_stack.settings.mlflow_tracking_uri)
    with mlflow.start_run(run_name="docopt"):
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(features, model.predict(features)),
            extra_pip_requirements=["docopt==0.6.2"],
        )
    name, (first, second) = _register(inference_stack, "test-docopt", info, versions=2)
    await _in_catalog(inference_stack, name, [first, second])
    row = {"a": [1.5], "b": [0.5]}

    with pytest.raises(ModelUnavailable) as failed:
        await client.predict(name, row, version=first, wait=ANSWER_WAIT_S)
    assert failed.value.message.startswith(f"{DOCOPT}\npip: ")
    assert "No matching distribution found for docopt==0.6.2" in failed.value.message

    # Asked again: answered from the pool's memory of the failed start, without pip.
    with pytest.raises(ModelUnavailable) as again:
        await client.predict(name, row, version=first)
    assert again.value.message.startswith(f"{DOCOPT}\npip: ")
    assert f"\n({name}/{first} failed to start (1 time(s)); next attempt in " in (
        again.value.message
    )

    # Another version with the same requirements: the dependency set is remembered.
    with pytest.raises(ModelUnavailable) as other:
        await client.predict(name, row, version=second, wait=ANSWER_WAIT_S)
    assert other.value.message.startswith(f"{DOCOPT}\npip: ")
    assert "\n(remembered: this dependency set failed to resolve 1 time(s); next attempt in " \
        in other.value.message

    # The catalog lists the worker's problem; the status stays as it was.
    problem = f"worker: model_unavailable: {DOCOPT}"
    for version in (first, second):
        entry = await _entry_with_problem(inference_stack, f"{name}/{version}", problem)
        assert (entry.status, entry.problems) == ("ready", [problem])


async def test_a_numpy_pin_without_a_wheel_for_the_containers_python_is_model_unavailable(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    sample = pd.DataFrame({"x": [1.0], "label": ["a"]})
    mlflow.set_tracking_uri(inference_stack.settings.mlflow_tracking_uri)
    with mlflow.start_run(run_name="numpy-2.5.5"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(SCALE_MODEL),
            signature=infer_signature(sample, pd.DataFrame({"y": [2.0], "label_upper": ["A"]})),
            pip_requirements=[f"mlflow=={mlflow.__version__}", "numpy==2.5.5",
                              f"pandas=={pd.__version__}", f"pyarrow=={pa.__version__}"],
        )
    name, (version,) = _register(inference_stack, "test-numpy-pin", info, versions=1)
    await _in_catalog(inference_stack, name, [version])
    with pytest.raises(ModelUnavailable) as failed:
        await client.predict(name, {"x": [1.0], "label": ["a"]}, version=version,
                             wait=ANSWER_WAIT_S)
    decisive = failed.value.message.splitlines()[0]
    assert decisive == (
        "numpy==2.5.5: no wheel for Python 3.11 / manylinux_2_36_x86_64 (wheels only for "
        "cp312, cp313, cp314, cp315; Requires-Python >=3.12)"
    )
    entry = await _entry_with_problem(
        inference_stack, f"{name}/{version}", f"worker: model_unavailable: {decisive}"
    )
    assert entry.status == "ready"
