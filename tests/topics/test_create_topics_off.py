"""``MODELBUS_KAFKA_CREATE_TOPICS=false`` against the real broker: with the topics missing
no service or client makes one, each stops with one line naming them and the command that
makes them; after ``modelbus topics apply`` every one of them works, and makes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest
from tests.support.settings import isolated_settings
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus.wiring import assemble_worker, build_catalog, build_discovery
from modelbus_catalog.entry import ModelFacts
from modelbus_client.reply_topics import ReplyTopicRequired
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import missing_topics_line, plan
from modelbus_delivery.topic_admin import TopicsMissing, list_topic_names
from modelbus_discovery.changes import VersionSnapshot
from modelbus_discovery.recent import ModelState

pytestmark = pytest.mark.integration

NO_MLFLOW = "http://127.0.0.1:9"


def _settings(kafka_bootstrap: str) -> ModelbusSettings:
    settings = isolated_settings(kafka_bootstrap, NO_MLFLOW, "no-create")
    return settings.model_copy(update={
        "kafka_create_topics": False,
        "client_reply_topic": f"{settings.topic_prefix}replies.team-a",
    })


def _env(settings: ModelbusSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    return env | {
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MLFLOW_TRACKING_URI": NO_MLFLOW,
        "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
        "MODELBUS_KAFKA_CREATE_TOPICS": "false",
        "MODELBUS_CLIENT_REPLY_TOPIC": str(settings.client_reply_topic),
    }


def _modelbus(settings: ModelbusSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelbus", *args], env=_env(settings),
                          capture_output=True, text=True, timeout=180)


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("Error:")]


async def _ours(settings: ModelbusSettings) -> set[str]:
    names = await list_topic_names(settings.kafka_bootstrap_servers)
    return {n for n in names if n.startswith(settings.topic_prefix)}


@pytest.mark.parametrize(("command", "roles"), [
    (("discovery",), ("discovered",)),
    (("catalog", "serve"), ("discovered", "catalog", "dlq")),
    (("worker",), ("requests", "requests_bulk", "results", "dlq", "catalog", "discovered")),
])
async def test_a_service_makes_no_topic_and_stops_with_one_line(
    command: tuple[str, ...], roles: tuple[str, ...], kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap)
    proc = _modelbus(settings, *command)
    missing = [getattr(settings.topics, role) for role in roles]
    assert (proc.returncode, _error_lines(proc)) == (
        1, [f"Error: {command[0]}: {missing_topics_line(missing)}"]
    )
    assert await _ours(settings) == set()


async def test_a_client_makes_no_topic_and_says_which_are_missing(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap)
    team = str(settings.client_reply_topic)
    with pytest.raises(TopicsMissing) as missing:
        async with AsyncModelbusClient(settings=settings):
            pass
    assert missing.value.message == missing_topics_line(
        [settings.topics.requests, settings.topics.requests_bulk, team], (team,)
    )
    assert "`modelbus topics apply --reply-topic " + team + "`" in missing.value.message
    private = settings.model_copy(update={"client_reply_topic": None})
    with pytest.raises(ReplyTopicRequired):
        async with AsyncModelbusClient(settings=private):
            pass
    catalog = _modelbus(settings, "catalog")
    results = _modelbus(settings, "results", "--out", "/nonexistent/never-written",
                        "--max-idle", "1")
    assert [catalog.returncode, results.returncode] == [1, 1]
    assert [*_error_lines(catalog), *_error_lines(results)] == [
        f"Error: topics_missing: {missing_topics_line([settings.topics.catalog])}",
        f"Error: topics_missing: {missing_topics_line([settings.topics.results])}",
    ]
    assert await _ours(settings) == set()


class Doubling:
    """The worker's predictor port: y = 2a (no container: the topics are under test)."""

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        return pa.table({"y": [2.0 * a for a in table.column("a").to_pylist()]})

    async def close(self) -> None:
        return None


class OneModel:
    """The registry port: one tagged version, nothing recently changed."""

    def tagged_versions(self) -> list[VersionSnapshot]:
        return [VersionSnapshot("doubling", "1", model_tags={"datagrok": ""})]

    def tagged_versions_of(self, name: str) -> list[VersionSnapshot]:
        return [v for v in self.tagged_versions() if v.name == name]

    def recently_updated_models(self, limit: int) -> list[ModelState]:
        return []


class DoublingFacts:
    """The catalog's reader port: the version's signature, a -> y."""

    def read(self, name: str, version: str) -> ModelFacts:
        return ModelFacts(
            signature={"inputs": '[{"type": "double", "name": "a"}]',
                       "outputs": '[{"type": "double", "name": "y"}]'},
            flavors={"python_function": {}},
        )


async def test_after_topics_apply_every_service_and_client_works_and_makes_nothing(
    kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap)
    applied = _modelbus(settings, "topics", "apply")
    planned = [s.name for s in plan(settings)]
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.splitlines() == [f"created  {name}" for name in planned]
    checked = _modelbus(settings, "topics", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    services: list[Any] = [
        build_discovery(settings, OneModel()),
        build_catalog(settings, DoublingFacts()),
        assemble_worker(settings, Doubling()),
    ]
    try:
        for service in services:
            await service.start()
        worker = services[2]
        await async_wait_for(lambda: "doubling/1" in worker.catalog.entries, 60,
                             message="the version discovered, catalogued and seen by the worker")
        async with AsyncModelbusClient(settings=settings) as client:
            table = await client.predict("doubling", pa.table({"a": [1.5, 4.0]}), timeout=30)
        assert table.column("y").to_pylist() == [3.0, 8.0]
    finally:
        for service in reversed(services):
            await service.stop()
    assert await _ours(settings) == set(planned)
    assert not any(name.startswith(f"{settings.topic_prefix}replies.") and name not in planned
                   for name in await _ours(settings))
