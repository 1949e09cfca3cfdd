"""Each model version runs under the Python it was logged with, or says why it cannot."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa
import pytest
import yaml
from mlflow import MlflowClient
from tests.support.waiting import async_wait_for

from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.messages import CatalogEntry
from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.settings import ContainerSettings

from .conftest import FlavorStack
from .flavor_models import X, python_model, sklearn_logged_with
from .other_python import python_model_logged_under

pytestmark = pytest.mark.integration
TRIXIE = Interpreter("3.13", "2.41", suite="trixie")
# The first start of a new interpreter builds its base image (debootstrap) and wheels:
# minutes. It is warmed first: a request's own deadline (at most 60 s) does not cover a build.
FIRST_START_S = 1200.0
EXPECTED_Y = [2.0, 2.0, 8.0, -3.5]


async def _entry(stack: FlavorStack, name: str, version: str) -> CatalogEntry:
    entries = stack.worker.catalog.entries
    await async_wait_for(lambda: f"{name}/{version}" in entries, 60,
                         message=f"{name}/{version} in the catalog")
    return entries[f"{name}/{version}"]


def _logged_python(uri: str, name: str, version: str) -> str:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    root = client.get_model_version_download_uri(name, version)
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(f"{root}/python_env.yaml", tracking_uri=uri)
    return str(yaml.safe_load(open(path).read())["python"])


async def test_a_model_logged_from_python_3_13_runs_under_3_13_from_trixie(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str, docker_client: Any
) -> None:
    # Blocking (it may build the trixie images): off the loop the services run on.
    name, version = await asyncio.to_thread(
        python_model_logged_under, docker_client, TRIXIE, mlflow_tracking_uri, "py313-model")
    assert _logged_python(mlflow_tracking_uri, name, version).startswith("3.13.")
    entry = await _entry(flavor_stack, name, version)
    assert entry.python_version is not None and entry.python_version.startswith("3.13.")
    assert entry.status == "ready"
    assert [p for p in entry.problems if p.startswith("python:")] == []
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert result.column("y").to_pylist() == EXPECTED_Y
    pythons = set(result.column("python").to_pylist())
    assert len(pythons) == 1 and pythons.pop().startswith("3.13.")


async def test_a_model_logged_from_python_3_11_runs_under_3_11(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str
) -> None:
    name, version = await asyncio.to_thread(python_model, mlflow_tracking_uri, "py311-model")
    entry = await _entry(flavor_stack, name, version)
    assert [p for p in entry.problems if p.startswith("python:")] == []
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert result.column("y").to_pylist() == EXPECTED_Y
    assert {v[:5] for v in result.column("python").to_pylist()} == {"3.11."}


async def test_a_python_model_of_a_python_nobody_offers_is_refused_fast(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str
) -> None:
    name, version = await asyncio.to_thread(
        python_model, mlflow_tracking_uri, "py312-model", "3.12.3")
    entry = await _entry(flavor_stack, name, version)
    problem = (
        "python: logged with Python 3.12; workers offer Python 3.11 (Debian bookworm), 3.13 "
        "(Debian trixie): its cloudpickled PythonModel holds Python 3.12 code that Python "
        "3.11 cannot load, so requests answer model_unavailable (offer 3.12: "
        "MODELBUS_WORKER_BASE_IMAGE_TEMPLATE, or log it with Python 3.11)"
    )
    assert problem in entry.problems
    for _ in range(2):  # the second answer comes from the remembered failure
        with pytest.raises(ModelUnavailable) as info:
            await flavor_stack.client.predict(name, X, version=version, timeout=120)
        assert "logged with Python 3.12; workers offer Python 3.11" in info.value.message
    assert f"{name}/{version}" not in flavor_stack.pool.running()


async def test_a_pickled_estimator_of_a_python_nobody_offers_runs_on_the_nearest(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str
) -> None:
    name, version = await asyncio.to_thread(sklearn_logged_with, mlflow_tracking_uri, "3.10.14")
    entry = await _entry(flavor_stack, name, version)
    assert (
        "python: logged with Python 3.10; workers offer Python 3.11 (Debian bookworm), 3.13 "
        "(Debian trixie): it runs under Python 3.11 and will likely load (its files hold no "
        "Python code objects)"
    ) in entry.problems
    await asyncio.wait_for(flavor_stack.pool.warm(name, version), FIRST_START_S)
    result = await flavor_stack.client.predict(name, X, version=version)
    assert [round(v, 9) for v in result.column(0).to_pylist()] == EXPECTED_Y


async def test_an_image_template_provides_a_python_no_suite_offers(
    flavor_stack: FlavorStack, mlflow_tracking_uri: str, docker_client: Any, tmp_path: Any
) -> None:
    # No registry here: the template names a local image holding Python 3.13 (trixie's
    # root file system, as the worker imported it for the first test of this module).
    name, version = await asyncio.to_thread(
        python_model_logged_under, docker_client, TRIXIE, mlflow_tracking_uri, "py313-template")
    rootfs = [t for i in docker_client.images.list("modelbus/rootfs") for t in i.tags
              if t.startswith("modelbus/rootfs:trixie-")]
    assert rootfs, "the trixie root file system is imported by the worker"
    template_repo = "modelbus-test/python-template"
    docker_client.images.get(rootfs[0]).tag(template_repo, "3.13")
    settings = ContainerSettings(python_suites="bookworm",
                                 base_image_template=f"{template_repo}:{{python}}")
    try:
        async with ContainerPool(settings, docker_client, mlflow_tracking_uri) as pool:
            result = await pool.predict(name, version, pa.Table.from_pandas(X),
                                        timeout_s=FIRST_START_S)
            image = docker_client.containers.get(pool.running()[f"{name}/{version}"]).image
            assert any(t.startswith("modelbus/runtime:") for t in image.tags)
        assert result.column("y").to_pylist() == EXPECTED_Y
        assert {v[:5] for v in result.column("python").to_pylist()} == {"3.13."}
        base_tag = f"modelbus/base:from-{template_repo.replace('/', '-')}-3.13"
        base = docker_client.images.get(base_tag)
        assert base.labels["modelbus.base"] == f"{template_repo}:3.13"
    finally:
        docker_client.images.remove(f"{template_repo}:3.13")
