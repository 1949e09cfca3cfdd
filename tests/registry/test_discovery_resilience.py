"""Discovery survives restarts (idempotent) and registry outages (backoff, then resumes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from tests.support.waiting import async_wait_for

from modelbus.stack import free_tcp_port
from modelbus.wiring import build_discovery
from modelbus_contract.messages import DiscoveryEvent
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.topics import read_to_end

from .sample_models import LoggedModel, log_sample_model, register
from .test_discovery_catalog import completed_scans

pytestmark = pytest.mark.integration


async def discovered(settings: ModelbusSettings) -> list[DiscoveryEvent]:
    records = await read_to_end(settings.kafka_bootstrap_servers, settings.topics.discovered)
    return [DiscoveryEvent.model_validate_json(r.value) for r in records]


async def test_restarting_discovery_emits_nothing_when_nothing_changed(
    settings: ModelbusSettings,
    mlflow_client: MlflowClient,
    sample_model: LoggedModel,
    model_name: str,
    cleanup_models: list[str],
) -> None:
    cleanup_models.append(model_name)
    register(mlflow_client, model_name, sample_model, model_tags={"datagrok": ""})
    register(mlflow_client, model_name, sample_model)

    first = build_discovery(settings)
    await first.start()
    await completed_scans(first, 2)
    await first.stop()
    before = await discovered(settings)
    mine = [e for e in before if e.name == model_name]
    assert sorted((e.kind, e.version) for e in mine) == [("found", "1"), ("found", "2")]

    second = build_discovery(settings)
    await second.start()
    await completed_scans(second, 3)
    await second.stop()
    assert len(await discovered(settings)) == len(before)


async def test_discovery_outlives_a_registry_outage(
    settings: ModelbusSettings,
    mlflow_server_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server = mlflow_server_factory(tmp_path / "mlflow", free_tcp_port())
    settings = settings.model_copy(
        update={"mlflow_tracking_uri": server.tracking_uri, "retry_max_s": 2.0}
    )
    client = MlflowClient(server.tracking_uri, registry_uri=server.tracking_uri)
    logged = log_sample_model(server.tracking_uri)
    register(client, "before-outage", logged, model_tags={"datagrok": ""})
    artifacts = client.get_logged_model(logged[2]).artifact_location
    discovery = build_discovery(settings)
    await discovery.start()
    try:
        await completed_scans(discovery, 1)
        server.stop()
        await async_wait_for(
            lambda: discovery.consecutive_failures >= 2, 60, message="failed registry scans"
        )
        # The registry changes while its server is down (straight into its database).
        database = f"sqlite:///{server.data_dir / 'mlflow.db'}"
        offline = MlflowClient(database, registry_uri=database)
        offline.create_registered_model("during-outage", tags={"datagrok": ""})
        offline.create_model_version("during-outage", artifacts, run_id=logged[1])
        assert discovery.running
        server.start()
        async def announced() -> bool:
            return any(e.name == "during-outage" for e in await discovered(settings))

        await async_wait_for(announced, 90, 0.5, "the model registered during the outage")
        assert discovery.running
        assert discovery.consecutive_failures == 0
    finally:
        await discovery.stop()
        server.stop()
