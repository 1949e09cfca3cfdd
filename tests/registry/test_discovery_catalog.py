"""Registry → discovery → catalog, through a real MLflow server and a real Kafka broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from mlflow import MlflowClient
from tests.support.waiting import async_wait_for

from modelbus_catalog.service import CatalogService
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_discovery.service import DiscoveryService

from .sample_models import LoggedModel, register

pytestmark = pytest.mark.integration
Services = tuple[DiscoveryService, CatalogService]


async def completed_scans(discovery: DiscoveryService, count: int, timeout_s: float = 30) -> None:
    """Wait until discovery has finished ``count`` more listings of the registry."""
    target = discovery.scans + count
    await async_wait_for(
        lambda: discovery.scans >= target, timeout_s, 0.05, f"{count} more registry scans"
    )


def entry(view: CatalogView, key: str) -> CatalogEntry:
    return view.entries[key]


async def test_datagrok_sample_model_becomes_a_catalog_entry(
    registry_services: Services,
    catalog_view: CatalogView,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
    settings: ModelbusSettings,
) -> None:
    cleanup_models.append(model_name)
    started = time.monotonic()
    version = register(mlflow_client, model_name, sample_model, model_tags={"datagrok": ""})
    key = f"{model_name}/{version}"
    assert await catalog_view.wait_until(
        lambda entries: key in entries, settings.poll_interval_s + 5
    ), "the tagged model did not reach the catalog within poll interval + 5 s"
    latency = time.monotonic() - started
    got = entry(catalog_view, key)
    assert [(p.index, p.name, p.type, p.arrow_type) for p in got.inputs] == [
        (0, "Molecule", "string", "string")
    ]
    assert [(p.index, p.name, p.type) for p in got.outputs] == [(0, "Predicted", "double")]
    assert got.status == "ready", got.problems
    assert got.problems == []
    assert got.flavors == ["python_function"]
    assert "pandas" in got.requirements
    assert got.python_version
    assert got.run_id == sample_model[1]
    print(f"discovery-to-catalog latency: {latency:.2f} s")


async def test_untagged_model_appears_only_once_tagged(
    registry_services: Services,
    catalog_view: CatalogView,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
) -> None:
    discovery, _ = registry_services
    cleanup_models.extend([model_name, f"{model_name}-v"])
    version = register(mlflow_client, model_name, sample_model)
    await completed_scans(discovery, 3)
    assert f"{model_name}/{version}" not in catalog_view.entries

    mlflow_client.set_registered_model_tag(model_name, "datagrok", "yes")
    assert await catalog_view.wait_until(lambda e: f"{model_name}/{version}" in e, 15)

    # The tag on a version (not on the registered model) is enough for that version only.
    other = f"{model_name}-v"
    untagged = register(mlflow_client, other, sample_model)
    tagged = register(mlflow_client, other, sample_model, version_tags={"datagrok": ""})
    assert await catalog_view.wait_until(lambda e: f"{other}/{tagged}" in e, 15)
    await completed_scans(discovery, 2)
    assert f"{other}/{untagged}" not in catalog_view.entries


async def test_versions_updates_and_tombstones(
    registry_services: Services,
    catalog_view: CatalogView,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
) -> None:
    cleanup_models.append(model_name)
    changes = catalog_view.changes()
    first = register(mlflow_client, model_name, sample_model, model_tags={"datagrok": ""})
    second = register(mlflow_client, model_name, sample_model)
    k1, k2 = f"{model_name}/{first}", f"{model_name}/{second}"
    assert await catalog_view.wait_until(lambda e: k1 in e and k2 in e, 15)

    mlflow_client.set_model_version_tag(model_name, first, "datagrok-inputs-0-semtype", "Molecule")
    assert await catalog_view.wait_until(
        lambda e: k1 in e and e[k1].inputs[0].semtype == "Molecule", 15
    )
    mlflow_client.set_model_version_tag(model_name, first, "datagrok-inputs-0-semtype", "Smiles")
    assert await catalog_view.wait_until(lambda e: e[k1].inputs[0].semtype == "Smiles", 15)
    assert entry(catalog_view, k2).inputs[0].semtype is None

    mlflow_client.set_registered_model_alias(model_name, "champion", second)
    assert await catalog_view.wait_until(lambda e: e[k2].aliases == ["champion"], 15)

    mlflow_client.delete_model_version(model_name, first)
    assert await catalog_view.wait_until(lambda e: k1 not in e and k2 in e, 15)

    mlflow_client.delete_registered_model_tag(model_name, "datagrok")
    assert await catalog_view.wait_until(lambda e: k2 not in e, 15)

    # Both removals were real tombstones (null values) on the catalog topic.
    seen: list[tuple[str, bool]] = []
    async with asyncio.timeout(5):
        async for change in changes:
            seen.append((change.key, change.entry is None))
            if (k2, True) in seen:
                break
    assert (k1, True) in seen
    assert (k2, True) in seen
