"""Ready before anyone asks, through the real broker, MLflow server and Docker engine.

Discovery, catalog and workers run in-process on a topic prefix of their own, with the
background preparation policy under test. A version whose dependency set is new comes with
a wheel made for the test (served from a local ``--find-links`` directory), so its images
are built for the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from pydantic import SecretStr
from tests.support.kafka import read_topic
from tests.support.private_index import build_wheel
from tests.support.settings import isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import build_catalog, build_discovery, build_worker
from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    ServingReport,
)
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.partitioner import keyed_partition
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.service import WorkerService
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

pytestmark = pytest.mark.integration

MODELS = Path(__file__).parents[1] / "containers" / "models"
SLOW_MODEL = Path(__file__).parent / "models" / "slow_prepare_model.py"
SAMPLE = pd.DataFrame({"x": [1.0, 2.5], "label": ["a", "b"]})
PIP_REQUIREMENTS = [f"mlflow=={mlflow.__version__}", f"pandas=={pd.__version__}",
                    f"pyarrow=={pa.__version__}"]
BUILD_TIMEOUT_S = 900.0  # a new dependency set is resolved and built on first use


@dataclass
class Stack:
    settings: ModelbusSettings
    wheels: Path
    docker_client: Any
    workers: list[WorkerService] = field(default_factory=list)
    pools: list[ContainerPool] = field(default_factory=list)
    running: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def registry(self) -> MlflowClient:
        uri = self.settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    async def start_worker(self, worker_id: str, **pool: Any) -> WorkerService:
        settings = self.settings.model_copy(update={"worker_id": worker_id})
        container_settings = ContainerSettings(
            pip=PipIndexSettings(find_links=SecretStr(str(self.wheels))), **pool)
        containers = ContainerPool(container_settings, self.docker_client,
                                   settings.mlflow_tracking_uri)
        worker = build_worker(settings, containers)
        await worker.start()
        self.running.push_async_callback(worker.stop)
        self.workers.append(worker)
        self.pools.append(containers)
        return worker

    def new_wheel(self) -> str:
        """A requirement only this test's wheel directory has: a new dependency set."""
        name = f"prep-{uuid.uuid4().hex[:10]}"
        build_wheel(self.wheels, name, "1.0",
                    {f"{name.replace('-', '_')}/__init__.py": "OFFSET = 0\n"})
        return f"{name}==1.0"

    def log(self, code: Path, requirements: list[str], name: str | None = None) -> Any:
        """Log the model from code (and register it as ``name`` with the stack's discovery
        tag set right after, as the page's own flow does)."""
        uri = self.settings.mlflow_tracking_uri
        previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)  # another test may have pointed it elsewhere
        try:
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=str(code), pip_requirements=requirements,
                    signature=infer_signature(SAMPLE, pd.DataFrame({"y": [2.0, 5.0]})),
                    registered_model_name=name,
                )
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])
        if name is not None:
            self.registry.set_registered_model_tag(name, self.settings.datagrok_tag, "")
        return info

    def register(self, name: str, info: Any) -> str:
        """Another registered model from the same logged files (tagged); its version."""
        self.registry.create_registered_model(name, tags={self.settings.datagrok_tag: ""})
        mv = self.registry.create_model_version(name, info.model_uri, run_id=info.run_id,
                                                model_id=info.model_id)
        return str(mv.version)


@pytest.fixture
async def stack(kafka_bootstrap: str, mlflow_tracking_uri: str, docker_client: Any,
                tmp_path: Path) -> AsyncIterator[Stack]:
    # A discovery tag of its own: the session's registry holds other tests' models, which
    # this stack's workers would otherwise prepare too.
    settings = isolated_settings(kafka_bootstrap, mlflow_tracking_uri, "prep").model_copy(
        update={"worker_prepare": "latest", "topic_partitions": 4,
                "datagrok_tag": f"prep-{uuid.uuid4().hex[:8]}"})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = Stack(settings, wheels, docker_client)
    async with made.running:
        for service in (build_discovery(settings), build_catalog(settings)):
            await service.start()
            made.running.push_async_callback(service.stop)
        yield made


async def _serving(worker: WorkerService, key: str, state: str, within: float,
                   by: str | None = None) -> CatalogEntry:
    def shown() -> CatalogEntry | None:
        entry = worker.catalog.entries.get(key)
        serving = entry.serving if entry is not None else None
        if serving is not None and serving.state == state and by in (None, serving.worker):
            return entry
        return None

    return await async_wait_for(shown, within, message=f"{key} {state} in the catalog")


def _sample(metrics: Any, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_new_model_is_prepared_before_any_request_and_answered_at_once(
    stack: Stack,
) -> None:
    worker = await stack.start_worker("prep-1")
    starts: list[str] = []
    stack.pools[0].add_start_listener(lambda n, v, e, s: starts.append(f"{n}/{v}"))
    name = f"prep-new-{uuid.uuid4().hex[:8]}"
    stack.log(MODELS / "scale_model.py", [*PIP_REQUIREMENTS, stack.new_wheel()], name)
    key = f"{name}/1"

    async with AsyncModelbusClient(settings=stack.settings) as client:
        entry = await client.wait_prepared(name, timeout=BUILD_TIMEOUT_S)
        assert entry.key == key
        assert entry.serving is not None and entry.serving.seconds is not None
        assert entry.serving.worker == "prep-1"
        assert stack.pools[0].ready(name, "1")
        assert starts == [key]  # started by the preparation: no request was sent
        assert _sample(worker.metrics, "modelbus_preparations_total",
                       {"outcome": "prepared"}) == 1
        began = time.monotonic()
        answer = await client.predict(name, SAMPLE)
        seconds = time.monotonic() - began
    assert answer.column("y").to_pylist() == [2.0, 5.0]
    assert starts == [key]  # the first request needed no start of its own
    assert seconds < 1.0, f"the first request of a prepared version took {seconds:.2f} s"


def _model_on(partition: int, stem: str, count: int = 4) -> str:
    everything = list(range(count))
    return next(name for i in range(10_000)
                if keyed_partition((name := f"{stem}-{i}").encode(), everything, everything)
                == partition)


async def test_a_worker_given_partitions_prepares_what_it_now_owns(stack: Stack) -> None:
    first = await stack.start_worker("prep-a", max_containers=1)
    stem = f"prep-move-{uuid.uuid4().hex[:6]}"
    names = [_model_on(p, stem) for p in range(4)]  # one model on each request partition
    info = stack.log(MODELS / "scale_model.py", PIP_REQUIREMENTS)
    for name in names:
        stack.register(name, info)
    for name in names:
        await _serving(first, f"{name}/1", "prepared", BUILD_TIMEOUT_S, by="prep-a")
    assert first.preparer is not None
    assert first.preparer.outcomes == dict.fromkeys((f"{n}/1" for n in names), "prepared")

    second = await stack.start_worker("prep-b", max_containers=1)
    await async_wait_for(lambda: second.runtime.assigned(), 60, message="a rebalance")
    held = {tp.partition for tp in second.runtime.assigned()}
    moved = {f"{names[p]}/1" for p in held}
    assert moved and len(held) < 4
    for key in moved:
        await _serving(second, key, "prepared", BUILD_TIMEOUT_S, by="prep-b")
    assert second.preparer is not None
    assert second.preparer.outcomes == dict.fromkeys(moved, "prepared")


async def test_policy_none_builds_nothing_before_a_request(stack: Stack) -> None:
    stack.settings = stack.settings.model_copy(update={"worker_prepare": "none"})
    worker = await stack.start_worker("prep-none")
    starts: list[str] = []
    stack.pools[0].add_start_listener(lambda n, v, e, s: starts.append(f"{n}/{v}"))
    name = f"prep-none-{uuid.uuid4().hex[:8]}"
    stack.log(MODELS / "scale_model.py", PIP_REQUIREMENTS, name)
    await async_wait_for(lambda: f"{name}/1" in worker.catalog.entries, 60,
                         message="the entry in the worker's view")
    await async_wait_for(lambda: worker.runtime.assigned(), 60, message="an assignment")
    assert worker.preparer is not None
    worker.preparer.wake()
    await worker.preparer.idle()
    entry = worker.catalog.entries[f"{name}/1"]
    assert (entry.serving, starts, stack.pools[0].running()) == (None, [], {})
    assert worker.preparer.outcomes == {}

    async with AsyncModelbusClient(settings=stack.settings) as client:
        answer = await client.predict(name, SAMPLE, wait=BUILD_TIMEOUT_S)
    assert answer.column("y").to_pylist() == [2.0, 5.0]
    assert starts == [f"{name}/1"]  # started by the request


async def test_a_model_that_cannot_be_installed_is_reported_failed_once(stack: Stack) -> None:
    worker = await stack.start_worker("prep-fail")
    name = f"prep-fail-{uuid.uuid4().hex[:8]}"
    missing = f"modelbus-missing-{uuid.uuid4().hex[:8]}==1.0"
    stack.log(MODELS / "scale_model.py", [*PIP_REQUIREMENTS, missing], name)
    key = f"{name}/1"
    async with AsyncModelbusClient(settings=stack.settings) as client:
        with pytest.raises(ModelUnavailable, match=f"^{key} could not be prepared: "):
            await client.wait_prepared(name, "1", timeout=BUILD_TIMEOUT_S)
    entry = await _serving(worker, key, "failed", 60, by="prep-fail")
    assert entry.serving is not None
    assert entry.serving.error_code == "model_unavailable"
    assert missing.split("==")[0] in (entry.serving.error_message or "")

    # The entry changes again (a version tag): the preparer looks again, and builds nothing.
    stack.registry.set_model_version_tag(name, "1", "note", "changed")
    await async_wait_for(
        lambda: (e := worker.catalog.entries.get(key)) is not None
        and e.tags.get("note") == "changed", 60, message="the updated entry")
    assert worker.preparer is not None
    await worker.preparer.idle()
    reports = [
        ServingReport.model_validate_json(r.value) for r in
        await read_topic(stack.settings.kafka_bootstrap_servers, stack.settings.topics.discovered)
        if dict(r.headers).get(MESSAGE_TYPE_HEADER) == SERVING_REPORT_TYPE.encode()
        and r.key == f"{key}#serving".encode()
    ]
    assert [r.state for r in reports] == ["preparing", "failed"]
    assert worker.preparer.outcomes == {key: "failed"}


async def test_a_version_a_request_made_warm_is_reported_prepared_and_never_preparing(
    stack: Stack,
) -> None:
    name = f"prep-warm-{uuid.uuid4().hex[:8]}"
    info = stack.log(MODELS / "scale_model.py", PIP_REQUIREMENTS, name)
    stack.registry.create_model_version(name, info.model_uri, run_id=info.run_id,
                                        model_id=info.model_id)  # version 2, the latest
    old, new = f"{name}/1", f"{name}/2"
    async with AsyncModelbusClient(settings=stack.settings) as client:
        # Both in the catalog before the worker plans: version 1 is never the latest it sees.
        async def both() -> bool:
            return {old, new} <= {e.key for e in await client.catalog()}

        await async_wait_for(both, 60, interval=0.5, message="both versions in the catalog")
    worker = await stack.start_worker("prep-warm")
    await _serving(worker, new, "prepared", BUILD_TIMEOUT_S, by="prep-warm")
    assert worker.preparer is not None and old not in worker.preparer.outcomes
    async with AsyncModelbusClient(settings=stack.settings) as client:
        answer = await client.predict(name, SAMPLE, version="1", wait=BUILD_TIMEOUT_S)
    assert answer.column("y").to_pylist() == [2.0, 5.0]
    assert stack.pools[0].ready(name, "1")  # the request made version 1 warm

    # An alias makes version 1 wanted too: the preparer finds it warm already.
    stack.registry.set_registered_model_alias(name, "champion", "1")
    await _serving(worker, old, "prepared", 60, by="prep-warm")
    reports = [
        ServingReport.model_validate_json(r.value) for r in
        await read_topic(stack.settings.kafka_bootstrap_servers, stack.settings.topics.discovered)
        if dict(r.headers).get(MESSAGE_TYPE_HEADER) == SERVING_REPORT_TYPE.encode()
        and r.key == f"{old}#serving".encode()
    ]
    assert [r.state for r in reports] == ["prepared"]  # never "preparing": it answered


async def test_modelbus_predict_waits_out_a_preparation_longer_than_its_default_wait(
    stack: Stack, tmp_path: Path,
) -> None:
    worker = await stack.start_worker("prep-slow", start_timeout_s=300)
    name = f"prep-slow-{uuid.uuid4().hex[:8]}"
    stack.log(SLOW_MODEL, [*PIP_REQUIREMENTS, stack.new_wheel()], name)
    await async_wait_for(lambda: f"{name}/1" in worker.catalog.entries, 60,
                         message="the entry in the worker's view")
    rows = tmp_path / "rows.csv"
    SAMPLE.to_csv(rows, index=False)
    env = {**os.environ,
           "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
           "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix}
    began = time.monotonic()
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "modelbus", "predict", "--model", name,
                         str(rows)],
        env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S + 120)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert took > 60.0  # longer than the client's default wait: the notices extended it
    assert proc.stdout.split() == ["y", "2.0", "5.0"]
    steps = [line for line in proc.stderr.splitlines() if " is being prepared: " in line]
    assert steps and all(line.startswith(f"{name}/1 is being prepared: ") for line in steps)
    assert f"{name}/1 is being prepared: loading" in "\n".join(steps)
