"""Predictions end to end: Kafka request → worker → warm Docker container → Kafka result."""

from __future__ import annotations

import asyncio
import uuid

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from mlflow import MlflowClient

from modelbus.client import AsyncModelbusClient, ModelbusClient
from modelbus_client.tables import from_ipc_stream, to_ipc_stream
from modelbus_contract.headers import header_dict
from modelbus_delivery.topics import assign_all

from .conftest import InferenceStack

pytestmark = pytest.mark.integration


def _in_process(stack: InferenceStack, name: str, version: str, frame) -> np.ndarray:  # type: ignore[no-untyped-def]
    uri = stack.settings.mlflow_tracking_uri
    location = MlflowClient(uri, registry_uri=uri).get_model_version_download_uri(name, version)
    mlflow.set_tracking_uri(uri)  # the artifact location is resolved through the tracking server
    out = mlflow.pyfunc.load_model(location).predict(frame)
    return np.asarray(out.iloc[:, 0] if hasattr(out, "iloc") else out).ravel()


async def test_demo_models_answer_like_in_process_pyfunc(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    molecule, iris = inference_stack.demo
    got = await client.predict(molecule.name, molecule.sample, version=molecule.version)
    assert got.column_names == ["Predicted"]
    assert got.schema.field("Predicted").metadata == {b"semtype": b"Score"}
    expected = _in_process(inference_stack, molecule.name, molecule.version, molecule.sample)
    np.testing.assert_allclose(got.column("Predicted").to_numpy(), expected, equal_nan=True)

    got = await client.predict(iris.name, iris.sample)  # newest READY version
    assert got.column_names == ["species"]
    assert got.schema.field("species").metadata == {b"semtype": b"IrisSpecies"}
    expected = _in_process(inference_stack, iris.name, iris.version, iris.sample)
    assert got.column("species").to_pylist() == expected.tolist()


async def test_request_from_plain_aiokafka_following_the_readme(
    inference_stack: InferenceStack,
) -> None:
    topics = inference_stack.settings.topics
    servers = inference_stack.settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, fetch_max_wait_ms=5)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        tps = await assign_all(consumer, topics.results)  # the answer's partition: by key
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        cid = uuid.uuid4().hex
        table = pa.table({"Molecule": ["CCO", "c1ccccc1"]})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        await producer.send_and_wait(
            topics.requests,
            sink.getvalue().to_pybytes(),
            key=cid.encode(),
            headers=[
                ("model", b"demo-molecule-score"),
                ("model_version", b"1"),
                ("correlation_id", cid.encode()),
                ("content-type", b"application/vnd.apache.arrow.stream"),
            ],
        )
        answer = None
        async with asyncio.timeout(60):
            while answer is None:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        if header_dict(r.headers).get("correlation_id") == cid:
                            answer = r
        headers = header_dict(answer.headers)
        assert answer.key == cid.encode()
        assert headers["status"] == "ok", headers
        assert headers["model_version"] == "1"
        result = pa.ipc.open_stream(answer.value).read_all()
        assert result.num_rows == 2
        assert result.column_names == ["Predicted"]
    finally:
        await producer.stop()
        await consumer.stop()


async def test_alias_and_table_or_dict_inputs(client: AsyncModelbusClient) -> None:
    by_alias = await client.predict("test-tricky", {"Molecule": ["abc"]}, version="@stable")
    assert by_alias.column("Predicted").to_pylist() == ["3"]
    by_table = await client.predict("test-tricky", pa.table({"Molecule": ["abcd"]}), version=1)
    assert by_table.column("Predicted").to_pylist() == ["4"]


def test_arrow_helpers_round_trip() -> None:
    table = pa.table({"a": [1, 2]})
    assert from_ipc_stream(to_ipc_stream(table)).equals(table)


async def test_sync_client_predicts_lists_and_watches_the_catalog(
    inference_stack: InferenceStack,
) -> None:
    molecule = inference_stack.demo[0]

    def use_sync_client() -> tuple[list[float], list[str], str]:
        with ModelbusClient(settings=inference_stack.settings) as mb:
            table = mb.predict(molecule.name, molecule.sample, timeout=60)
            keys = [e.key for e in mb.catalog()]
            first = next(iter(mb.watch_catalog()))
        return table.column("Predicted").to_pylist(), keys, first.key

    values, keys, first = await asyncio.to_thread(use_sync_client)
    assert len(values) == len(molecule.sample)
    assert f"{molecule.name}/{molecule.version}" in keys
    assert first in keys


async def test_watch_catalog_yields_current_entries_then_changes(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    tricky = inference_stack.tricky
    key = f"{tricky.name}/{tricky.version}"
    changes = client.watch_catalog()
    seen = set()
    async with asyncio.timeout(30):
        async for change in changes:
            seen.add(change.key)
            if key in seen:
                break
    assert key in seen
    # A new alias is announced as a change of the same entry.
    uri = inference_stack.settings.mlflow_tracking_uri
    MlflowClient(uri, registry_uri=uri).set_registered_model_alias(
        tricky.name, "watched", tricky.version
    )
    async with asyncio.timeout(30):
        async for change in changes:
            if change.key == key and change.entry and "watched" in change.entry.aliases:
                break
    await changes.aclose()
