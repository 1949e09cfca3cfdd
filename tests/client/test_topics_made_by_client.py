"""A client that is the first to need the requests topic makes it with the configured
partition count (and its own reply topic with one): a broker that creates topics on first
use (Tansu: 4 partitions, Apache Kafka: ``num.partitions``, 1 by default) would otherwise
fix a count that the workers' group and the request keys do not expect."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from tests.support.settings import isolated_settings

from modelbus.client import AsyncModelbusClient

pytestmark = pytest.mark.integration


async def test_the_client_makes_the_requests_topic_with_the_configured_count(
    kafka_bootstrap: str,
) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "client-topics")
    settings = settings.model_copy(update={"topic_partitions": 7})
    async with AsyncModelbusClient(settings=settings) as client:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            counts = {
                topic: len(consumer.partitions_for_topic(topic) or ())
                for topic in (settings.topics.requests, client.reply_topic)
            }
        finally:
            await consumer.stop()
    assert counts == {settings.topics.requests: 7, client.reply_topic: 1}
