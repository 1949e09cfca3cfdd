"""Wheels from a private package index (basic auth) configured by ``MODELBUS_PIP_*``: the
model is answered, and the password is in no log line, no error message and no image."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.models import infer_signature
from structlog.testing import capture_logs
from tests.support.private_index import build_wheel, private_index

from modelbus_contract.errors import InternalError
from modelbus_worker.settings import PipIndexSettings

from .conftest import MODELS, PIP_REQUIREMENTS, Registry

pytestmark = pytest.mark.integration

TABLE = pa.table({"x": [1.0, 2.5]})


def register_inhouse_model(registry: Registry) -> str:
    """The model needs ``inhouse-scale==1.0``, which only the private index has."""
    name = f"inhouse-{registry.run_tag}"
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    exp = mlflow.get_experiment_by_name("private-index")
    exp_id = exp.experiment_id if exp else mlflow.create_experiment(
        "private-index", artifact_location=registry.artifacts.as_uri()
    )
    sample = TABLE.to_pandas()
    with mlflow.start_run(experiment_id=exp_id):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODELS / "inhouse_model.py"),
            signature=infer_signature(sample, pd.DataFrame({"y": [3.0, 7.5]})),
            pip_requirements=[*PIP_REQUIREMENTS, "inhouse-scale==1.0"],
            registered_model_name=name,
        )
    return name


def image_contains(image: Any, needle: bytes) -> bool:
    """Whether ``needle`` occurs anywhere in the saved image (every layer, config, history)."""
    tail = b""
    for chunk in image.save(named=False):
        data = tail + chunk
        if needle in data:
            return True
        tail = data[-len(needle):]
    return False


async def test_a_private_index_with_basic_auth_serves_the_models_inhouse_package(
    pools: Any, registry: Registry, docker_client: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = f"pw{uuid.uuid4().hex}"
    wheel = build_wheel(tmp_path, "inhouse-scale", "1.0",
                        {"inhouse_scale/__init__.py": "def scale(x):\n    return 3 * x\n"})
    name = register_inhouse_model(registry)
    with private_index([wheel], "builder", password) as index, capture_logs() as logs:
        # Credentials the index refuses are the operator's problem, not the model's.
        monkeypatch.setenv("MODELBUS_PIP_EXTRA_INDEX_URL", index.url("not-the-password"))
        # A cache of its own: this test's wheelhouses (one per index URL) go with it.
        cache = tmp_path / "cache"
        refused = pools(pip=PipIndexSettings(), cache_dir=cache)
        with pytest.raises(InternalError) as info:
            await refused.predict(name, "1", TABLE)
        assert info.value.code == "internal"
        assert info.value.message.startswith("pip download failed for ")
        assert "401 Client Error: Unauthorized" in info.value.message
        assert "not-the-password" not in info.value.message
        assert ("/simple/inhouse-scale/", 401) in index.requests

        monkeypatch.setenv("MODELBUS_PIP_EXTRA_INDEX_URL", index.url())
        monkeypatch.setenv("MODELBUS_PIP_TRUSTED_HOST", "127.0.0.1")
        pool = pools(pip=PipIndexSettings(), cache_dir=cache)
        got = await pool.predict(name, "1", TABLE)
        assert got.column("y").to_pylist() == [3.0, 7.5]
        assert ("/simple/inhouse-scale/", 200) in index.requests
        assert ("/files/inhouse_scale-1.0-py3-none-any.whl", 200) in index.requests
        container = docker_client.containers.get(pool.running()[f"{name}/1"])
        image = docker_client.images.get(container.attrs["Image"])
        await pool.close()
        await refused.close()

    try:
        written = "\n".join(repr(event) for event in logs)
        assert [e["event"] for e in logs if e["event"] == "depset_image_built"] == [
            "depset_image_built"
        ]
        assert password not in written and "not-the-password" not in written
        # The image is built offline from the wheelhouse: nothing of the index in it.
        assert password not in repr(image.history())
        assert password not in repr(image.attrs["Config"])
        assert not image_contains(image, password.encode())
        assert image_contains(image, b"def scale(x):")  # the search does find what is there
    finally:
        # The images are keyed by this test's index URL: no other run can use them.
        depset = image.labels["modelbus.depset"]
        for tag in (*image.tags, depset):
            docker_client.images.remove(tag)
