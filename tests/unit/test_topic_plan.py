"""The topic plan: settings in, every topic's partitions, replicas and configs out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelbus_contract.channels import TopicSpec, private_reply_pattern, private_reply_topic
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import (
    missing_topics_line,
    plan,
    reply_topic_spec,
    topic_spec,
)


def _settings(**update: object) -> ModelbusSettings:
    return ModelbusSettings.model_construct().model_copy(update=update)


def test_the_default_plan_is_what_the_services_always_made() -> None:
    specs = plan(_settings())
    assert [(s.name, s.partitions, s.replication_factor, s.configs) for s in specs] == [
        ("modelbus.models.discovered", 1, 1, {"cleanup.policy": "compact"}),
        ("modelbus.models.catalog", 1, 1, {"cleanup.policy": "compact"}),
        ("modelbus.inference.requests", 12, 1, {"cleanup.policy": "delete"}),
        ("modelbus.inference.requests.bulk", 12, 1, {"cleanup.policy": "delete"}),
        ("modelbus.inference.results", 12, 1, {"cleanup.policy": "delete"}),
        ("modelbus.inference.dlq", 1, 1, {"cleanup.policy": "delete"}),
        ("modelbus.inference.dlq.replays", 1, 1, {"cleanup.policy": "compact"}),
    ]


def test_every_setting_lands_on_its_topics() -> None:
    settings = _settings(
        topic_prefix="p.", topic_partitions=6, topic_replication_factor=3,
        topic_min_insync_replicas=2, topic_requests_retention_ms=3_600_000,
        topic_results_retention_ms=86_400_000, topic_dlq_retention_ms=-1,
        topic_compaction_delete_retention_ms=1000, topic_compaction_segment_ms=60_000,
        topic_compaction_min_cleanable_dirty_ratio=0.2,
    )
    by_name = {s.name: s for s in plan(settings)}
    compaction = {"cleanup.policy": "compact", "min.insync.replicas": "2",
                  "delete.retention.ms": "1000", "segment.ms": "60000",
                  "min.cleanable.dirty.ratio": "0.2"}
    assert by_name["p.models.catalog"].configs == compaction
    assert by_name["p.models.discovered"].configs == compaction
    assert by_name["p.inference.dlq.replays"].configs == compaction
    assert by_name["p.inference.requests"].configs == {
        "cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "3600000"}
    assert by_name["p.inference.requests.bulk"].configs == by_name["p.inference.requests"].configs
    assert by_name["p.inference.requests.bulk"].partitions == 6
    assert by_name["p.inference.results"].configs == {
        "cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "86400000"}
    assert by_name["p.inference.dlq"].configs == {
        "cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "-1"}
    assert {s.replication_factor for s in by_name.values()} == {3}
    assert by_name["p.inference.requests"].partitions == 6
    assert by_name["p.inference.dlq"].partitions == 1


def test_a_reply_topic_holds_results_and_the_results_topic_plans_alike() -> None:
    settings = _settings(topic_replication_factor=2, topic_results_retention_ms=5000)
    assert reply_topic_spec(settings, "modelbus.replies.x", 1) == TopicSpec(
        "modelbus.replies.x", 1, False, 2, (("retention.ms", "5000"),))
    results = settings.topics.results
    assert reply_topic_spec(settings, results, 12) == topic_spec(settings, "results")


def test_shared_reply_topics_join_the_plan_once() -> None:
    settings = _settings(client_reply_topic="modelbus.replies.team-a")
    names = [s.name for s in plan(settings, ("modelbus.replies.team-b",
                                            "modelbus.replies.team-a"))]
    assert names[7:] == ["modelbus.replies.team-b", "modelbus.replies.team-a"]
    # The results topic as the reply topic is planned once, as the results topic.
    results = _settings(client_reply_topic="modelbus.inference.results")
    assert len(plan(results)) == 7


def test_min_insync_replicas_above_the_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"every write \(acks=all\) would be refused"):
        ModelbusSettings(topic_replication_factor=2, topic_min_insync_replicas=3)
    assert ModelbusSettings(topic_replication_factor=3,
                            topic_min_insync_replicas=2).topic_min_insync_replicas == 2


def test_the_missing_topics_line_names_them_and_the_command() -> None:
    assert missing_topics_line(["a.requests"]) == (
        "topic a.requests is missing (or not visible to this principal) and "
        "MODELBUS_KAFKA_CREATE_TOPICS=false: create it with `modelbus topics apply` "
        "(`modelbus topics plan` prints the kafka-topics.sh commands)"
    )
    line = missing_topics_line(["a.requests", "a.replies.team"], ("a.replies.team",))
    assert line.startswith("topics a.requests, a.replies.team are missing")
    assert "create them with `modelbus topics apply --reply-topic a.replies.team`" in line


def test_private_reply_topics_match_their_pattern_and_shared_ones_do_not() -> None:
    settings = _settings(topic_prefix="t.")
    pattern = private_reply_pattern(settings)
    assert pattern.fullmatch(private_reply_topic(settings))
    for other in ("t.replies.team-a", "t.replies.0123", "u.replies." + "a" * 32,
                  "t.replies." + "a" * 33, "t.inference.results"):
        assert not pattern.fullmatch(other), other
