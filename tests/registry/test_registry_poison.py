"""The registry side never stops on bad input: a discovery event the catalog cannot read,
an event the broker refuses."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from tests.support.kafka import produce, read_topic

from modelbus_catalog.service import CatalogService
from modelbus_contract.headers import header_dict
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_discovery.service import DiscoveryService

from .sample_models import LoggedModel, register
from .test_discovery_catalog import completed_scans

pytestmark = pytest.mark.integration


async def test_an_unreadable_discovery_event_is_quarantined_and_the_catalog_goes_on(
    settings: ModelbusSettings,
    registry_services: tuple[DiscoveryService, CatalogService],
    catalog_view: CatalogView,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
) -> None:
    _, catalog = registry_services
    garbage = await produce(settings.kafka_bootstrap_servers, settings.topics.discovered,
                            b"\x00 not json", key=b"broken/1")
    cleanup_models.append(model_name)
    register(mlflow_client, model_name, sample_model, model_tags={"datagrok": ""})
    assert await catalog_view.wait_until(lambda e: f"{model_name}/1" in e, 60)
    dlq = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.dlq, until=lambda rs: len(rs) >= 1
    )
    copies = [header_dict(r.headers) for r in dlq]
    assert [(c["dlq_source"], c["dlq_offset"], c["dlq_error_code"]) for c in copies] == [
        (settings.topics.discovered, str(garbage.offset), "bad_request")
    ]
    assert copies[0]["dlq_error_message"].startswith("not a discovery event")
    assert [r.value for r in dlq] == [b"\x00 not json"]
    assert "broken/1" not in catalog_view.entries
    assert catalog.runtime.running


async def test_discovery_skips_an_event_the_broker_refuses_and_keeps_announcing(
    registry_services: tuple[DiscoveryService, CatalogService],
    catalog_view: CatalogView,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
) -> None:
    discovery, _ = registry_services
    huge, fine = f"{model_name}-huge", f"{model_name}-fine"
    cleanup_models.extend([huge, fine])
    # Twelve tags of 100,000 characters: the discovery event is over the 1 MiB record limit.
    tags = {"datagrok": "", **{f"note-{n}": "abcdefghijkl"[n] * 100_000 for n in range(12)}}
    register(mlflow_client, huge, sample_model, model_tags=tags)
    await completed_scans(discovery, 2)
    register(mlflow_client, fine, sample_model, model_tags={"datagrok": ""})
    assert await catalog_view.wait_until(lambda e: f"{fine}/1" in e, 60)
    assert discovery.running
    assert f"{huge}/1" not in catalog_view.entries
