"""The plan as a table and as Kafka tool commands, and the fix printed for each finding."""

from __future__ import annotations

from modelbus.topic_plan_text import AdminTarget, create_command, fix, plan_warnings, table
from modelbus_contract.channels import TopicSpec
from modelbus_delivery.topic_diff import Finding, Kind

TARGET = AdminTarget("k1:9092,k2:9092")
RESULTS = TopicSpec("p.results", 12, False, 3, (("retention.ms", "86400000"),))


def test_the_create_command_carries_partitions_replicas_and_every_config() -> None:
    assert create_command(RESULTS, TARGET) == (
        "kafka-topics.sh --bootstrap-server k1:9092,k2:9092 --create --if-not-exists "
        "--topic p.results --partitions 12 --replication-factor 3 "
        "--config cleanup.policy=delete --config retention.ms=86400000"
    )
    secured = AdminTarget("k:9093", "/etc/kafka/admin client.properties")
    assert create_command(TopicSpec("p.catalog", compacted=True), secured) == (
        "kafka-topics.sh --bootstrap-server k:9093 --command-config "
        "'/etc/kafka/admin client.properties' --create --if-not-exists --topic p.catalog "
        "--partitions 1 --replication-factor 1 --config cleanup.policy=compact"
    )


def test_the_table_aligns_the_columns() -> None:
    assert table([RESULTS, TopicSpec("p.catalog", compacted=True)]) == [
        "topic      partitions  replicas  configs",
        "p.results  12          3         cleanup.policy=delete retention.ms=86400000",
        "p.catalog  1           1         cleanup.policy=compact",
    ]


def test_one_replica_is_warned_about() -> None:
    assert plan_warnings([RESULTS]) == []
    (warning,) = plan_warnings([RESULTS, TopicSpec("p.dlq")])
    assert warning.startswith("# replication factor 1: one broker's loss loses these topics")


def test_each_difference_gets_the_command_that_would_fix_it() -> None:
    def fixed(**finding: object) -> str | None:
        return fix(Finding("p.results", **finding), RESULTS, TARGET)  # type: ignore[arg-type]

    assert fixed(kind=Kind.MISSING) == create_command(RESULTS, TARGET)
    assert fixed(kind=Kind.DIFFERS, what="partitions", planned="12", actual="4") == (
        "kafka-topics.sh --bootstrap-server k1:9092,k2:9092 --alter --topic p.results "
        "--partitions 12   # keys map to other partitions once"
    )
    assert fixed(kind=Kind.DIFFERS, what="partitions", planned="12", actual="16") == (
        "# a topic's partitions cannot be removed: make it again, or plan 16 "
        "(MODELBUS_TOPIC_PARTITIONS)"
    )
    assert fixed(kind=Kind.DIFFERS, what="retention.ms", planned="86400000", actual="1") == (
        "kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --alter --entity-type topics "
        "--entity-name p.results --add-config retention.ms=86400000"
    )
    assert fixed(kind=Kind.DIFFERS, what="replication factor", planned="3",
                 actual="1").startswith("# kafka-reassign-partitions.sh")
    unwritable = fixed(kind=Kind.UNWRITABLE, what="min.insync.replicas", actual="4")
    assert unwritable is not None and unwritable.startswith(
        "kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --alter --entity-type topics "
        "--entity-name p.results --add-config min.insync.replicas=3"
    )
    assert fixed(kind=Kind.UNKNOWN, what="retention.ms", planned="86400000") is None
