"""``modelbus up --demo``: register the demo models, wait for the catalog, call each once."""

from __future__ import annotations

import asyncio
import time

import mlflow
from mlflow import MlflowClient

from modelbus_client import AsyncModelbusClient
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import get_logger

from .models import DemoModel, log_iris_model, log_molecule_model

log = get_logger("demo")

# The first request of each model builds its images (wheels resolved, Debian base reused)
# and starts its container: minutes on a fresh machine, milliseconds once warm.
COLD_START_TIMEOUT_S = 1800.0


def register_demo_models(tracking_uri: str) -> list[DemoModel]:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("modelbus-demo")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return [log_molecule_model(client), log_iris_model(client)]


async def call_demo_models(settings: ModelbusSettings, models: list[DemoModel]) -> None:
    view = CatalogView(settings.kafka_bootstrap_servers, settings.topics.catalog)
    await view.start()
    try:
        keys = [f"{m.name}/{m.version}" for m in models]
        deadline = settings.poll_interval_s + 60
        if not await view.wait_until(lambda e: all(k in e for k in keys), deadline):
            missing = [k for k in keys if k not in view.entries]
            raise RuntimeError(f"demo models not in the catalog after {deadline}s: {missing}")
    finally:
        await view.stop()
    async with AsyncModelbusClient(settings=settings) as client:
        for model in models:
            started = time.monotonic()
            result = await client.predict(
                model.name, model.sample, version=model.version, timeout=COLD_START_TIMEOUT_S
            )
            elapsed = time.monotonic() - started
            frame = model.sample.copy()
            for name in result.column_names:
                frame[name] = result.column(name).to_pylist()
            semtypes = {
                f.name: (f.metadata or {}).get(b"semtype", b"").decode() for f in result.schema
            }
            print(
                f"\n== {model.name} v{model.version} (answered in {elapsed:.1f}s; "
                f"output semtypes {semtypes})\n{frame.to_string(index=False)}\n",
                flush=True,
            )


def run_demo(settings: ModelbusSettings) -> None:
    """Register both demo models and print one prediction from each (blocking)."""
    models = register_demo_models(settings.mlflow_tracking_uri)
    log.info("demo_models_registered", models=[f"{m.name}/{m.version}" for m in models])
    asyncio.run(call_demo_models(settings, models))
