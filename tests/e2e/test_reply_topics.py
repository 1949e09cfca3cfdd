"""Each client reads its answers on a reply topic of its own, made when it starts and
deleted when it closes, or on a team's shared one, taking its own by correlation id; how
long a call waits is apart from the model's deadline."""

from __future__ import annotations

import asyncio
import time
import uuid

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.kafka import produce, read_topic
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.channels import private_reply_pattern
from modelbus_contract.errors import InferenceTimeout
from modelbus_contract.headers import header_dict
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import shared_reply_topic_spec
from modelbus_delivery.topics import ensure_topics

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration


def _cids(records: list) -> list[str | None]:  # type: ignore[type-arg]
    """The correlation ids of the answers among ``records`` (a client's sign of life on its
    own topic, ``status: alive``, is none)."""
    return [header_dict(r.headers).get("correlation_id") for r in _answers(records)]


def _answers(records: list) -> list:  # type: ignore[type-arg]
    return [r for r in records if header_dict(r.headers).get("status") != "alive"]


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
        # A record is finished once every output it has is acknowledged: with nothing in
        # flight, whatever the worker published for the two requests is on the topics.
        await async_wait_for(lambda: inference_stack.worker.runtime.in_flight == 0, 30,
                             message="the worker finished the requests it was handed")
        for client, cid in ((a, cid_a), (b, cid_b)):
            assert _cids(await read_topic(bootstrap, client.reply_topic)) == [cid]
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


async def _records_in(bootstrap: str, topic: str) -> int:
    """The records ``topic`` holds (0 for a topic that is not there).

    A deleted topic may come back empty: a producer that once wrote to it (the worker's)
    asks for its metadata again, and a broker that creates topics on first use makes it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return 0
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_a_private_reply_topic_is_replaced_and_deleted_once_its_answers_came(
    inference_stack: InferenceStack,
) -> None:
    settings = inference_stack.settings.model_copy(
        update={"client_reply_topic": None, "client_reply_rotate_after": 2}
    )
    bootstrap = settings.kafka_bootstrap_servers
    async with AsyncModelbusClient(settings=settings) as client:
        first = client.reply_topic
        # A request that waits on the first topic while it is replaced: its record is sent
        # by hand below, once the second topic serves new requests.
        held = f"held-{uuid.uuid4().hex}"
        named, pending = client._replies.expect(held)
        await client.predict(TRICKY_MODEL, {"Molecule": ["CCO"]})  # the 2nd: replaces it
        await asyncio.wait_for(client._replies.rotated(), 30)
        second = client.reply_topic
        assert (named, second != first) == (first, True)
        cid = f"rot-{uuid.uuid4().hex}"
        await client.predict(TRICKY_MODEL, {"Molecule": ["CCO"]}, correlation_id=cid)
        assert _cids(await read_topic(bootstrap, second,
                                      until=lambda rs: len(_answers(rs)) >= 1)) == [cid]
        assert client._replies.topics == [second, first]  # the held request still waits

        await produce(
            bootstrap, settings.topics.requests, to_ipc_stream(pa.table({"Molecule": ["CCO"]})),
            key=TRICKY_MODEL,
            headers=[("model", TRICKY_MODEL), ("correlation_id", held), ("reply_to", first),
                     ("content-type", "application/vnd.apache.arrow.stream")],
        )
        headers, _ = await asyncio.wait_for(pending, 60)
        assert headers["status"] == "ok"
        await asyncio.wait_for(client._replies.settled(), 30)
        assert (client._replies.topics, client._replies.rotations) == ([second], 1)
        # The broker holds none of the first topic's 2 answers any more, and the second's 1.
        assert await _records_in(bootstrap, first) == 0
        assert _cids(await read_topic(bootstrap, second)) == [cid]
    assert await _records_in(bootstrap, second) == 0


async def test_a_private_reply_topic_read_often_enough_is_replaced(
    inference_stack: InferenceStack,
) -> None:
    """One request at a time, each answer is a read (and a record batch) of its own: the
    topic is replaced after ``client_reply_rotate_after_reads`` of them, whatever the count
    of requests, and the old one deleted once answered."""
    settings = inference_stack.settings.model_copy(update={
        "client_reply_topic": None, "client_reply_rotate_after": 0,
        "client_reply_rotate_after_reads": 3,
    })
    bootstrap = settings.kafka_bootstrap_servers
    async with AsyncModelbusClient(settings=settings) as client:
        first, reader = client.reply_topic, client._replies._current
        sent = 0
        while reader.reads < 3:  # the client's own sign of life on it may be one of them
            table = await client.predict(TRICKY_MODEL, {"Molecule": ["CCO"]})
            assert table.column("Predicted").to_pylist() == ["3"]
            sent += 1
        assert (sent in (2, 3), client._replies.rotations, client.reply_topic) == (
            True, 0, first)
        await client.predict(TRICKY_MODEL, {"Molecule": ["CCO"]})  # sent: the 3 reads seen
        await asyncio.wait_for(client._replies.rotated(), 30)
        second = client.reply_topic
        assert (second != first, client._replies.rotations) == (True, 1)
        cid = f"reads-{uuid.uuid4().hex}"
        await client.predict(TRICKY_MODEL, {"Molecule": ["CCO"]}, correlation_id=cid)
        await asyncio.wait_for(client._replies.settled(), 30)
        assert client._replies.topics == [second]
        assert await _records_in(bootstrap, first) == 0
        assert cid in _cids(await read_topic(bootstrap, second))


async def test_two_clients_sharing_a_team_reply_topic_each_get_their_own_answers(
    inference_stack: InferenceStack,
) -> None:
    """A team's reply topic, provisioned once: neither client makes nor deletes a topic
    (``MODELBUS_KAFKA_CREATE_TOPICS=false``); both read every answer on it and each takes
    its own by correlation id."""
    team = f"{inference_stack.settings.topic_prefix}replies.team-{uuid.uuid4().hex[:8]}"
    settings = inference_stack.settings.model_copy(
        update={"client_reply_topic": team, "kafka_create_topics": False}
    )
    bootstrap = settings.kafka_bootstrap_servers
    await ensure_topics(bootstrap, [shared_reply_topic_spec(settings, team)])  # the operator
    before = await _topics(settings)
    # Every input's answer is its length: a request's answer says which request it was.
    inputs = {"a": ["x" * n for n in range(1, 9)], "b": ["y" * n for n in range(11, 19)]}

    async def calls(client: AsyncModelbusClient, values: list[str]) -> list[list[str]]:
        tables = await asyncio.gather(*(
            client.predict(TRICKY_MODEL, {"Molecule": [v]}, timeout=60) for v in values
        ))
        return [t.column("Predicted").to_pylist() for t in tables]

    async with AsyncModelbusClient(settings=settings) as a, \
            AsyncModelbusClient(settings=settings) as b:
        assert a.reply_topic == b.reply_topic == team
        answers_a, answers_b = await asyncio.gather(
            calls(a, inputs["a"]), calls(b, inputs["b"])
        )
    assert answers_a == [[str(len(v))] for v in inputs["a"]]
    assert answers_b == [[str(len(v))] for v in inputs["b"]]
    await async_wait_for(lambda: inference_stack.worker.runtime.in_flight == 0, 30,
                         message="the worker finished the requests it was handed")
    on_team = await read_topic(bootstrap, team)
    assert len(_cids(on_team)) == len(set(_cids(on_team))) == 16
    # No client made (or deleted) a topic. (Private reply topics of the tests before are
    # left out: deleted, they may come back empty, made by the embedded broker when the
    # worker's producer asks for the metadata of the topics it once wrote to.)
    assert await _topics(settings) == before


async def _topics(settings: ModelbusSettings) -> set[str]:
    private = private_reply_pattern(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return {
            t for t in await admin.list_topics()
            if t.startswith(settings.topic_prefix) and not private.fullmatch(t)
        }
    finally:
        await admin.close()
