"""The admin side of topics: making them as planned, requiring them, and observing what a
broker holds (partitions, replicas, configs, the newest record) for ``modelbus topics``.

Nothing here asks for the metadata of a named topic that may be missing: a broker that
makes topics on first use (``auto.create.topics.enable``, the embedded broker) would make it.
Every topic list comes from the metadata of all topics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from modelbus_contract.channels import TopicSpec
from modelbus_contract.errors import ModelbusError
from modelbus_contract.topic_plan import missing_topics_line

from .closing import close_quietly
from .kafka_config import KafkaOptions, as_options
from .topic_diff import ObservedTopic

# How long reading the newest record of reply topics may take in all.
NEWEST_RECORD_TIMEOUT_S = 15.0


class TopicsMissing(ModelbusError):
    """Topics a service or client needs are missing and it may not make them
    (``MODELBUS_KAFKA_CREATE_TOPICS=false``); the message names them and the command."""

    code = "topics_missing"

    def __init__(self, missing: list[str], reply_topics: tuple[str, ...] = ()) -> None:
        super().__init__(missing_topics_line(missing, reply_topics))
        self.missing = missing


class TopicsNotCreated(ModelbusError):
    """The broker refused to make topics (no right to, a replication factor above its
    brokers, a config it does not accept): retrying would not help."""

    code = "topics_not_created"


async def create_topics(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> dict[str, str]:
    """Ask the broker to make ``specs``; the ones it refused, with its reason (a topic that
    exists already is no refusal). A retriable refusal (no controller yet) is raised."""
    if not specs:
        return {}
    response = await admin.create_topics([
        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
        for s in specs
    ])
    refused: dict[str, str] = {}
    for topic, code, *message in response.topic_errors:
        if code in (0, TopicAlreadyExistsError.errno):  # a concurrent creator won
            continue
        error = for_code(code)
        if error.retriable:
            raise error(f"creating {topic}: {message[0] if message else ''}")
        refused[topic] = f"{error.__name__}: {message[0] if message and message[0] else ''}"
    return refused


async def require_topics(
    kafka: str | KafkaOptions, specs: list[TopicSpec], reply_topics: tuple[str, ...] = ()
) -> None:
    """``TopicsMissing`` unless every topic of ``specs`` exists (nothing is made).

    Asks for the metadata of every topic, not of these: a broker that makes topics on
    first use (``auto.create.topics.enable``) makes a topic whose metadata is asked for.
    """
    existing = set(await list_topic_names(kafka))
    missing = [s.name for s in specs if s.name not in existing]
    if missing:
        raise TopicsMissing(missing, reply_topics)


async def _admin(kafka: str | KafkaOptions) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**as_options(kafka))
    try:
        await admin.start()
    except BaseException:
        await close_quietly("admin client", admin.close)
        raise
    return admin


async def create_missing(
    kafka: str | KafkaOptions, specs: list[TopicSpec]
) -> tuple[list[str], dict[str, str]]:
    """Make the topics of ``specs`` that do not exist: the ones made, and the ones the
    broker refused with its reason. An existing topic is left as it is."""
    admin = await _admin(kafka)
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        refused = await create_topics(admin, wanted)
    finally:
        await close_quietly("admin client", admin.close)
    return [s.name for s in wanted if s.name not in refused], refused


async def list_topic_names(kafka: str | KafkaOptions) -> list[str]:
    """Every topic the broker shows this principal."""
    admin = await _admin(kafka)
    try:
        return sorted(await admin.list_topics())
    finally:
        await close_quietly("admin client", admin.close)


async def observe_topics(
    kafka: str | KafkaOptions, names: Iterable[str]
) -> dict[str, ObservedTopic]:
    """What the broker holds of ``names`` (a missing topic is left out): partitions, the
    fewest replicas of a partition, and the topic's configs as DescribeConfigs reports them
    (``None`` with the reason when it cannot be read)."""
    admin = await _admin(kafka)
    try:
        wanted = set(names)
        metadata = [
            t for t in await admin.describe_topics()  # all topics: see the module doc
            if t["topic"] in wanted and t["error_code"] == 0
        ]
        configs, errors = await _describe_configs(admin, [t["topic"] for t in metadata])
    finally:
        await close_quietly("admin client", admin.close)
    return {
        t["topic"]: ObservedTopic(
            t["topic"],
            len(t["partitions"]),
            min((len(p["replicas"]) for p in t["partitions"]), default=0),
            configs.get(t["topic"]),
            errors.get(t["topic"]),
        )
        for t in metadata
    }


async def _describe_configs(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The configs of ``topics``, and why those that could not be read could not."""
    if not topics:
        return {}, {}
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        )
    except (KafkaError, OSError, ValueError) as exc:
        why = f"the broker does not describe topic configs ({type(exc).__name__}: {exc})"
        return {}, {name: why[:300] for name in topics}
    configs: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for response in responses:
        for code, message, _, name, entries in response.resources:
            if code:
                errors[name] = f"{for_code(code).__name__}: {message or ''}".strip()
            else:
                configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    return configs, errors


async def delete_topics(kafka: str | KafkaOptions, names: list[str]) -> dict[str, str]:
    """Delete ``names``: the ones the broker refused, with its reason."""
    admin = await _admin(kafka)
    try:
        response = await admin.delete_topics(names)
    finally:
        await close_quietly("admin client", admin.close)
    return {  # a topic that is gone already is no refusal
        topic: for_code(code).__name__ for topic, code, *_ in response.topic_error_codes
        if code not in (0, UnknownTopicOrPartitionError.errno)
    }


async def newest_record_times(
    kafka: str | KafkaOptions, topics: list[str], timeout_s: float = NEWEST_RECORD_TIMEOUT_S
) -> dict[str, int | None]:
    """Per topic, the timestamp (ms) of its newest record; ``None``: it holds none. A topic
    whose newest records could not be read within ``timeout_s`` is left out.

    Read without a consumer group: each partition from one before its end offset (a broker
    that answers the last batch's base offset + 1 returns that whole batch: the newest
    record is the latest timestamp fetched).
    """
    consumer = AIOKafkaConsumer(**as_options(kafka), enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    try:
        await consumer.start()
        return await _newest(consumer, topics, timeout_s)
    finally:
        await close_quietly("consumer", consumer.stop)


async def _newest(
    consumer: AIOKafkaConsumer, topics: list[str], timeout_s: float
) -> dict[str, int | None]:
    await consumer._client.force_metadata_update()  # all topics (no subscription)
    tps = [
        TopicPartition(topic, p)
        for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    found: dict[str, int | None] = {t: None for t in topics if consumer.partitions_for_topic(t)}
    if not tps:
        return found
    consumer.assign(tps)
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    waiting = {tp for tp in tps if ends[tp] > starts[tp]}
    for tp in waiting:
        consumer.seek(tp, max(starts[tp], ends[tp] - 1))
    consumer.pause(*(set(tps) - waiting))
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        batch: dict[TopicPartition, list[Any]] = await consumer.getmany(timeout_ms=200)
        for tp, records in batch.items():
            if records and tp in waiting:
                newest = max(r.timestamp for r in records)
                found[tp.topic] = max(found[tp.topic] or newest, newest)
                waiting.discard(tp)
                consumer.pause(tp)
        await asyncio.sleep(0)
    for topic in {tp.topic for tp in waiting}:  # not read in time: unknown, not empty
        found.pop(topic, None)
    return found
