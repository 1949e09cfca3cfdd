"""The flavors Datagrok users log, each answered through the real worker with exactly the
numbers the model gives in-process."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
from tests.support.waiting import async_wait_for

from modelbus_contract.messages import CatalogEntry

from .conftest import FlavorStack
from .flavor_models import (
    X,
    code_paths_model,
    lightgbm_regressor,
    linear_sklearn,
    slow_loading_model,
)

pytestmark = pytest.mark.integration
# The first start builds the flavor's dependency-set image on a fresh machine: minutes.
# It is warmed first: a request's own deadline (at most 60 s) does not cover a build.
FIRST_START_S = 1200.0


async def _entry(stack: FlavorStack, name: str, version: str) -> CatalogEntry:
    entries = stack.worker.catalog.entries
    await async_wait_for(lambda: f"{name}/{version}" in entries, 60,
                         message=f"{name}/{version} in the catalog")
    return entries[f"{name}/{version}"]


async def test_sklearn(flavor_stack: FlavorStack, mlflow_tracking_uri: str) -> None:
    name, version = await asyncio.to_thread(linear_sklearn, mlflow_tracking_uri)
    entry = await _entry(flavor_stack, name, version)
    assert (entry.status, [p.name for p in entry.inputs]) == ("ready", ["a", "b"])
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert [round(v, 9) for v in result.column(0).to_pylist()] == [2.0, 2.0, 8.0, -3.5]


async def test_sklearn_without_signature_named_by_tags(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str
) -> None:
    tags = {"datagrok-inputs-0-name": "a", "datagrok-inputs-1-name": "b"}
    name, version = await asyncio.to_thread(linear_sklearn, mlflow_tracking_uri, False, tags)
    entry = await _entry(flavor_stack, name, version)
    assert (entry.status, entry.has_signature) == ("ready", False)
    assert [p.name for p in entry.inputs] == ["a", "b"]
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert [round(v, 9) for v in result.column(0).to_pylist()] == [2.0, 2.0, 8.0, -3.5]


async def test_lightgbm(flavor_stack: FlavorStack, mlflow_tracking_uri: str) -> None:
    name, version, model = await asyncio.to_thread(lightgbm_regressor, mlflow_tracking_uri)
    entry = await _entry(flavor_stack, name, version)
    assert entry.status == "ready" and "lightgbm" in entry.flavors
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert result.column(0).to_pylist() == model.predict(X).tolist()


async def test_pyfunc_with_code_paths(flavor_stack: FlavorStack, mlflow_tracking_uri: str) -> None:
    name, version = await asyncio.to_thread(code_paths_model, mlflow_tracking_uri)
    entry = await _entry(flavor_stack, name, version)
    assert entry.status == "ready"
    data = pd.DataFrame({"x": [1.0, 2.0, -1.5]})
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, data, version=version)
    assert result.column("y").to_pylist() == [4.0, 7.0, -3.5]


async def test_a_first_request_waits_for_its_model_to_start_beyond_its_deadline(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str
) -> None:
    # Loading takes 4 s, the request's deadline is 1 s: the deadline counts from the start.
    name, version = await asyncio.to_thread(slow_loading_model, mlflow_tracking_uri)
    await _entry(flavor_stack, name, version)
    data = pd.DataFrame({"x": [1.0, 2.5]})
    result = await flavor_stack.client.predict(name, data, version=version, timeout=1.0,
                                               wait=FIRST_START_S)
    assert result.column("y").to_pylist() == [2.0, 3.5]
