"""``modelbus topics apply`` and ``check`` against the real broker: a topic with the wrong
partition count is reported (never changed) and fails both; one the broker made on first
use, without configs, is reported too, its unreported configs as notes."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result
from tests.support.settings import isolated_settings

from modelbus.cli import main
from modelbus_contract.channels import TopicSpec
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.topic_admin import observe_topics
from modelbus_delivery.topics import ensure_topics

pytestmark = pytest.mark.integration


def _topics(settings: ModelbusSettings, *args: str) -> Result:
    env = {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "MODELBUS_TOPIC_PREFIX": settings.topic_prefix, "MODELBUS_CLIENT_REPLY_TOPIC": ""}
    return CliRunner(env=env).invoke(main, ["topics", *args])


async def _made_on_first_use(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x")  # the broker makes it: its defaults
    finally:
        await producer.stop()


def test_a_wrong_partition_count_fails_apply_and_check_and_is_left_as_it_is(
    kafka_bootstrap: str,
) -> None:
    settings = isolated_settings(kafka_bootstrap, "http://127.0.0.1:9", "check")
    topics = settings.topics
    asyncio.run(ensure_topics(kafka_bootstrap, [TopicSpec(topics.requests, 3)]))
    asyncio.run(_made_on_first_use(kafka_bootstrap, topics.dlq))

    applied = _topics(settings, "apply")
    assert applied.exit_code == 1
    lines = applied.output.splitlines()
    for made in (topics.discovered, topics.catalog, topics.results):
        assert f"created  {made}" in lines
    wrong = (f"differs  {topics.requests}: partitions is 3, planned 12 (at most 3 consumers "
             "of a group share it)")
    assert wrong in lines
    assert lines[lines.index(wrong) + 1] == (
        f"           kafka-topics.sh --bootstrap-server {kafka_bootstrap} --alter --topic "
        f"{topics.requests} --partitions 12   # keys map to other partitions once"
    )
    # The embedded broker made the DLQ with 4 partitions and reports no config of it.
    assert f"differs  {topics.dlq}: partitions is 4, planned 1" in lines
    assert (f"note     {topics.dlq}: cleanup.policy is not reported by the broker "
            "(planned delete)") in lines
    assert lines[-1] == ("Error: 0 topic(s) refused, 2 difference(s) from the plan (nothing "
                         "existing was changed)")
    observed = asyncio.run(observe_topics(kafka_bootstrap, [topics.requests]))
    assert observed[topics.requests].partitions == 3  # never changed

    checked = _topics(settings, "check")
    assert checked.exit_code == 1
    assert wrong in checked.output.splitlines()
    assert checked.output.splitlines()[-1] == "Error: 2 difference(s) from the plan"
    for ok in (topics.discovered, topics.catalog, topics.results):
        assert f"ok       {ok}" in checked.output.splitlines()
