"""Fixtures for the container side: a real Docker engine and a real (SQLite) MLflow registry.

Nothing here skips: without a reachable Docker engine the integration tests fail.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pytest

from modelbus_worker.images.base import ensure_base_image
from modelbus_worker.pool.containers import LABEL_OWNER, owner_id
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.settings import ContainerSettings

MODELS = Path(__file__).parent / "models"
EXAMPLE = pd.DataFrame({"x": [1.0, 2.5], "label": ["a", "b"]})
PIP_REQUIREMENTS = [
    f"mlflow=={mlflow.__version__}",
    f"pandas=={pd.__version__}",
    f"pyarrow=={pa.__version__}",
]


class Registry:
    """A throw-away MLflow registry in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = root / "artifacts"
        self.run_tag = uuid.uuid4().hex[:6]

    def register(self, code_file: str, stem: str, requirements: list[str] | None = None) -> str:
        """Log ``models/<code_file>`` from code and register it; returns the model name."""
        name = f"{stem}-{self.run_tag}"
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        exp = mlflow.get_experiment_by_name("containers")
        exp_id = exp.experiment_id if exp else mlflow.create_experiment(
            "containers", artifact_location=self.artifacts.as_uri()
        )
        with mlflow.start_run(experiment_id=exp_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODELS / code_file),
                input_example=EXAMPLE,
                pip_requirements=requirements or PIP_REQUIREMENTS,
                registered_model_name=name,
            )
        return name


@pytest.fixture(scope="session")
def container_settings() -> ContainerSettings:
    return ContainerSettings(reap_interval_s=0.1, start_timeout_s=120, request_timeout_s=30)


@pytest.fixture(scope="session")
def base_image(docker_client: Any, container_settings: ContainerSettings) -> str:
    return ensure_base_image(docker_client, container_settings)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    registry = Registry(tmp_path_factory.mktemp("mlflow"))
    yield registry
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])
    # No per-model images to remove: models run from runtime images shared per dependency
    # set, which stay cached like the depset and base images.


@pytest.fixture(scope="session")
def scale_model(registry: Registry, base_image: str) -> str:
    return registry.register("scale_model.py", "scale")


@pytest.fixture(scope="session")
def sum_model(registry: Registry, base_image: str) -> str:
    return registry.register("series_model.py", "sum")


@pytest.fixture
async def pools(
    docker_client: Any, container_settings: ContainerSettings, registry: Registry
) -> AsyncIterator[Any]:
    """A factory of pools (with setting overrides); closes them and checks no container
    of this process is left at teardown."""
    created: list[ContainerPool] = []

    def make(**overrides: Any) -> ContainerPool:
        pool_settings = container_settings.model_copy(update=overrides)
        pool = ContainerPool(pool_settings, docker_client, registry.uri)
        created.append(pool)
        return pool

    yield make
    for pool in created:
        await pool.close()
    mine = {"label": f"{LABEL_OWNER}={owner_id()}"}
    left = docker_client.containers.list(all=True, filters=mine, ignore_removed=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
