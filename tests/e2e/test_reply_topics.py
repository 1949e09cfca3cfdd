"""Each client reads its answers on a reply topic of its own, made when it starts and
deleted when it closes; how long a call waits is apart from the model's deadline."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.kafka import read_topic

from modelbus.client import AsyncModelbusClient
from modelbus_contract.errors import InferenceTimeout
from modelbus_contract.headers import header_dict

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration


def _cids(records: list) -> list[str | None]:  # type: ignore[type-arg]
    return [header_dict(r.headers).get("correlation_id") for r in records]


async def test_each_client_reads_only_its_own_answers_on_a_topic_of_its_own(
    inference_stack: InferenceStack,
) -> None:
    settings = inference_stack.settings.model_copy(update={"client_reply_topic": None})
    bootstrap = settings.kafka_bootstrap_servers
    molecule = inference_stack.demo[0]
    cid_a, cid_b = f"own-a-{uuid.uuid4().hex}", f"own-b-{uuid.uuid4().hex}"
    async with AsyncModelbusClient(settings=settings) as a, \
            AsyncModelbusClient(settings=settings) as b:
        assert a.reply_topic != b.reply_topic
        for client in (a, b):
            assert client.reply_topic.startswith(f"{settings.topic_prefix}replies.")
        answer_a, answer_b = await asyncio.gather(
            a.predict(molecule.name, molecule.sample, correlation_id=cid_a),
            b.predict(molecule.name, molecule.sample, correlation_id=cid_b),
        )
        assert answer_a.num_rows == answer_b.num_rows == len(molecule.sample)
        for client, cid in ((a, cid_a), (b, cid_b)):
            first = await read_topic(bootstrap, client.reply_topic, until=lambda rs: len(rs) >= 1)
            assert _cids(first) == [cid]
            with pytest.raises(TimeoutError):  # and nothing else comes there
                await read_topic(bootstrap, client.reply_topic, until=lambda rs: len(rs) >= 2,
                                 timeout=2)
        reply_topics = (a.reply_topic, b.reply_topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        left = set(await admin.list_topics()) & set(reply_topics)
    finally:
        await admin.close()
    assert left == set()
    shared = await read_topic(bootstrap, settings.topics.results)
    assert {cid_a, cid_b} & set(_cids(shared)) == set()


async def test_the_wait_is_apart_from_the_models_deadline(
    inference_stack: InferenceStack, client: AsyncModelbusClient,
) -> None:
    # Waiting less than the deadline: the call gives up by its wait, the request runs on.
    started = time.monotonic()
    with pytest.raises(InferenceTimeout, match=r"^no result for test-tricky within 0.5s$"):
        await client.predict(TRICKY_MODEL, {"Molecule": ["sleep:2"]}, timeout=60, wait=0.5)
    assert time.monotonic() - started < 0.5 + 1.0
    # Waiting longer than the deadline: the worker's own timeout answer arrives.
    started = time.monotonic()
    with pytest.raises(InferenceTimeout, match=r"^test-tricky/\d+: no answer within 1.0s$"):
        await client.predict(TRICKY_MODEL, {"Molecule": ["sleep:3"]}, timeout=1, wait=30)
    assert time.monotonic() - started < 3
