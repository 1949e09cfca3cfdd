"""``modelbus topics prune-replies`` on the real broker: the private reply topics of gone
clients are found by their newest record (a live client's sign of life keeps its own), a
shared reply topic is never one of them, and nothing is deleted without ``--yes``."""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from tests.support.settings import isolated_settings

from modelbus.client import AsyncModelbusClient
from modelbus.topics_command import prune_replies
from modelbus_contract.channels import TopicSpec
from modelbus_delivery.topic_admin import list_topic_names, newest_record_times
from modelbus_delivery.topics import ensure_topics

pytestmark = pytest.mark.integration

HOUR_S = 3600.0


async def _write(bootstrap: str, topic: str, age_s: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"", timestamp_ms=int((time.time() - age_s) * 1000))
    finally:
        await producer.stop()


async def test_only_the_topics_of_gone_clients_are_pruned(kafka_bootstrap: str) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "prune")
    prefix = settings.topic_prefix
    left = f"{prefix}replies.{uuid.uuid4().hex}"  # its client died 2 h ago
    empty = f"{prefix}replies.{uuid.uuid4().hex}"  # its client died before its first record
    team = f"{prefix}replies.team-a"  # shared: never a candidate, however old
    await ensure_topics(kafka_bootstrap, [TopicSpec(left), TopicSpec(empty), TopicSpec(team)])
    await _write(kafka_bootstrap, left, 2 * HOUR_S)
    await _write(kafka_bootstrap, team, 5 * HOUR_S)

    async with AsyncModelbusClient(settings=settings) as client:
        live = client.reply_topic
        newest = await newest_record_times(kafka_bootstrap, [live])
        assert newest[live] is not None  # its sign of life, written at the start
        graces: list[float] = []

        async def grace(seconds: float) -> None:
            graces.append(seconds)

        decisions, refused = await prune_replies(settings, HOUR_S, 30, False, sleep=grace)
        assert [(d.topic, d.delete) for d in decisions] == sorted(
            [(left, True), (empty, True), (live, False)]
        )
        assert (graces, refused) == ([30], {})
        assert {left, empty, live, team} <= set(await list_topic_names(kafka_bootstrap))

        # Judged by its newest record: two hours from now, a client that stopped writing
        # would be gone too (the clock is injected).
        later, _ = await prune_replies(settings, HOUR_S, 0, False, sleep=grace,
                                       now=lambda: time.time() + 2 * HOUR_S)
        assert {d.topic for d in later if d.delete} == {left, empty, live}

        decisions, refused = await prune_replies(settings, HOUR_S, 0, True, sleep=grace)
        assert refused == {}
        ours = {n for n in await list_topic_names(kafka_bootstrap) if n.startswith(prefix)}
        assert {left, empty} & ours == set()
        assert {live, team} <= ours
