"""A client's sign of life on its own reply topics, and a client that may make no topic
(fakes: the real broker's side is in tests/topics/)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tests.support.waiting import async_wait_for

from modelbus_client.async_client import AsyncModelbusClient
from modelbus_client.reply_heartbeat import ALIVE_HEADERS, ReplyHeartbeat
from modelbus_client.reply_topics import ReplyTopicRequired
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.writer import PublishFailed, TopicWriter


class FakeWriter:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes | None, Any]] = []
        self.fail = False

    async def send(self, topic: str, key: Any, value: bytes | None, headers: Any) -> None:
        if self.fail:
            raise PublishFailed("TopicAuthorizationFailedError", retriable=False)
        self.sent.append((topic, key, value, headers))


async def test_every_reply_topic_is_told_at_once_and_then_every_interval() -> None:
    writer = FakeWriter()
    topics = ["p.replies.new"]
    heartbeat = ReplyHeartbeat(cast(TopicWriter, writer), lambda: topics, interval_s=0.05)
    heartbeat.start()
    try:
        await async_wait_for(lambda: len(writer.sent) >= 1, 5, message="the first record")
        assert writer.sent[0] == ("p.replies.new", None, b"", ALIVE_HEADERS)
        topics.append("p.replies.retiring")
        await async_wait_for(lambda: ("p.replies.retiring", None, b"", ALIVE_HEADERS)
                             in writer.sent, 5, message="a record on the second topic")
    finally:
        await heartbeat.stop()
    count = len(writer.sent)
    await asyncio.sleep(0.15)
    assert len(writer.sent) == count  # stopped


async def test_a_failed_sign_of_life_is_logged_not_raised() -> None:
    writer = FakeWriter()
    writer.fail = True
    heartbeat = ReplyHeartbeat(cast(TopicWriter, writer), lambda: ["p.replies.x"], 60)
    await heartbeat.announce("p.replies.x")
    assert heartbeat.sent == 0


async def test_a_client_that_may_make_no_topic_needs_a_shared_reply_topic() -> None:
    settings = ModelbusSettings(kafka_bootstrap_servers="127.0.0.1:9", kafka_create_topics=False)
    client = AsyncModelbusClient(settings=settings)
    with pytest.raises(ReplyTopicRequired, match=r"^MODELBUS_KAFKA_CREATE_TOPICS=false: a client "
                       r"cannot make a reply topic of its own; set MODELBUS_CLIENT_REPLY_TOPIC"):
        await client.start()
    await client.close()
