"""``modelbus topics``: its output and exit codes over a fake broker (the admin calls
replaced; the real ones run in tests/topics/)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from click.testing import CliRunner

from modelbus import topics_command
from modelbus.cli import main
from modelbus_contract.channels import TopicSpec
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import plan
from modelbus_delivery.topic_diff import ObservedTopic

HEX = "0123456789abcdef" * 2


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELBUS_TOPIC_PREFIX", "MODELBUS_CLIENT_REPLY_TOPIC",
                 "MODELBUS_TOPIC_PARTITIONS", "MODELBUS_KAFKA_SECURITY_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELBUS_KAFKA_BOOTSTRAP_SERVERS", "k:9092")


def _as_planned(spec: TopicSpec) -> ObservedTopic:
    return ObservedTopic(spec.name, spec.partitions, spec.replication_factor, spec.configs)


class FakeBroker:
    """The admin calls of ``topics_command`` on topics held in a dict."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, topics: dict[str, ObservedTopic],
                 refuse: dict[str, str] | None = None) -> None:
        self.topics = topics
        self.refuse = refuse or {}
        self.deleted: list[str] = []
        self.newest: dict[str, int | None] = {}
        for name in ("create_missing", "observe_topics", "list_topic_names",
                     "newest_record_times", "delete_topics"):
            monkeypatch.setattr(topics_command, name, getattr(self, name))

    async def create_missing(self, kafka: Any, specs: list[TopicSpec]) -> Any:
        made = [s for s in specs if s.name not in self.topics and s.name not in self.refuse]
        for spec in made:
            self.topics[spec.name] = _as_planned(spec)
        return [s.name for s in made], {n: w for n, w in self.refuse.items()
                                        if n in {s.name for s in specs}}

    async def observe_topics(self, kafka: Any, names: list[str]) -> dict[str, ObservedTopic]:
        return {n: self.topics[n] for n in names if n in self.topics}

    async def list_topic_names(self, kafka: Any) -> list[str]:
        return sorted(self.topics)

    async def newest_record_times(self, kafka: Any, topics: list[str]) -> Any:
        return {t: self.newest.get(t) for t in topics}

    async def delete_topics(self, kafka: Any, names: list[str]) -> dict[str, str]:
        self.deleted.extend(names)
        return {}


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["topics", *args])


def test_plan_prints_the_topics_and_their_commands_without_a_broker() -> None:
    result = _invoke("plan", "--reply-topic", "modelbus.replies.team-a")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["topic", "partitions", "replicas", "configs"]
    assert lines[4].split() == ["modelbus.inference.requests.bulk", "12", "1",
                                "cleanup.policy=delete"]
    assert lines[7].split() == ["modelbus.inference.dlq.replays", "1", "1",
                                "cleanup.policy=compact"]
    assert lines[8].split() == ["modelbus.replies.team-a", "12", "1", "cleanup.policy=delete"]
    commands = [line for line in lines if line.startswith("kafka-topics.sh")]
    assert len(commands) == 8
    assert commands[2] == (
        "kafka-topics.sh --bootstrap-server k:9092 --create --if-not-exists --topic "
        "modelbus.inference.requests --partitions 12 --replication-factor 1 "
        "--config cleanup.policy=delete"
    )


@pytest.mark.parametrize(("name", "why"), [
    ("other.replies", "workers refuse to answer on other.replies"),
    (f"modelbus.replies.{HEX}", "is named like a client's private reply topic"),
])
def test_a_reply_topic_workers_refuse_or_prune_would_take_is_refused(
    name: str, why: str
) -> None:
    result = _invoke("plan", "--reply-topic", name)
    assert result.exit_code == 2
    assert why in result.output


def test_check_passes_on_the_plan_and_fails_on_a_wrong_partition_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    specs = plan(ModelbusSettings())
    broker = FakeBroker(monkeypatch, {s.name: _as_planned(s) for s in specs})
    result = _invoke("check")
    assert (result.exit_code, result.output.split()[::2]) == (0, ["ok"] * 7)
    requests = broker.topics["modelbus.inference.requests"]
    broker.topics[requests.name] = ObservedTopic(requests.name, 4, 1, requests.configs)
    result = _invoke("check")
    assert result.exit_code == 1
    assert (
        "differs  modelbus.inference.requests: partitions is 4, planned 12 (at most 4 "
        "consumers of a group share it)"
    ) in result.output.splitlines()
    assert result.output.splitlines()[-1] == "Error: 1 difference(s) from the plan"


def test_apply_makes_what_is_missing_and_reports_but_never_changes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dlq = TopicSpec("modelbus.inference.dlq", 3)
    broker = FakeBroker(monkeypatch, {dlq.name: _as_planned(dlq)},
                        refuse={"modelbus.inference.results": "PolicyViolationError: no"})
    result = _invoke("apply")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "refused  modelbus.inference.results: PolicyViolationError: no",
        "created  modelbus.models.discovered",
        "created  modelbus.models.catalog",
        "created  modelbus.inference.requests",
        "created  modelbus.inference.requests.bulk",
        "differs  modelbus.inference.dlq: partitions is 3, planned 1",
        "           # a topic's partitions cannot be removed: make it again, or plan 3 "
        "(MODELBUS_TOPIC_PARTITIONS)",
        "created  modelbus.inference.dlq.replays",
        "Error: 1 topic(s) refused, 1 difference(s) from the plan (nothing existing was "
        "changed)",
    ]
    assert broker.topics[dlq.name].partitions == 3


def test_prune_lists_by_default_and_deletes_with_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    gone, alive = f"modelbus.replies.{HEX}", f"modelbus.replies.{HEX[::-1]}"
    broker = FakeBroker(monkeypatch, {
        name: ObservedTopic(name, 1, 1) for name in (gone, alive, "modelbus.replies.team")
    })
    monkeypatch.setattr(topics_command, "prune_replies", functools.partial(
        topics_command.prune_replies, now=lambda: 10_000.0))
    broker.newest = {gone: 10_000_000 - 7200_000, alive: 10_000_000 - 60_000}
    listed = _invoke("prune-replies")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        f"would delete {gone}  newest record 2.0h old",
        f"keep         {alive}  alive: newest record 1m old",
        "(nothing deleted: --yes deletes these 1)",
    ]
    assert broker.deleted == []
    deleted = _invoke("prune-replies", "--yes")
    assert deleted.output.splitlines()[0] == f"deleted      {gone}  newest record 2.0h old"
    assert broker.deleted == [gone]


def test_prune_refuses_an_idle_time_a_live_client_could_reach() -> None:
    result = _invoke("prune-replies", "--idle", "5m")
    assert result.exit_code == 2
    assert "less than twice the clients' heartbeat" in result.output


async def test_an_empty_reply_topic_is_gone_only_if_still_empty_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty, starting = f"modelbus.replies.{HEX}", f"modelbus.replies.{HEX[::-1]}"
    broker = FakeBroker(monkeypatch, {n: ObservedTopic(n, 1, 1) for n in (empty, starting)})
    waited: list[float] = []

    async def sleep(seconds: float) -> None:  # the starting client writes its first record
        waited.append(seconds)
        broker.newest[starting] = 1_000

    decisions, refused = await topics_command.prune_replies(
        ModelbusSettings(), 3600, 30, True, now=lambda: 2.0, sleep=sleep
    )
    assert waited == [30]
    assert [(d.topic, d.delete) for d in decisions] == [(empty, True), (starting, False)]
    assert (broker.deleted, refused) == ([empty], {})
