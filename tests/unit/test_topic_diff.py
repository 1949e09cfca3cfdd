"""Findings between the plan and what a broker holds: differences fail ``topics check``,
notes (what the broker does not report) do not."""

from __future__ import annotations

from modelbus_contract.channels import TopicSpec
from modelbus_delivery.topic_diff import Finding, Kind, ObservedTopic, diff

REQUESTS = TopicSpec("p.requests", 12, False, 3,
                     (("min.insync.replicas", "2"), ("retention.ms", "3600000")))
CATALOG = TopicSpec("p.catalog", 1, True, 3)


def _as_planned(spec: TopicSpec, **update: object) -> ObservedTopic:
    seen = ObservedTopic(spec.name, spec.partitions, spec.replication_factor, spec.configs)
    return ObservedTopic(**{**seen.__dict__, **update})  # type: ignore[arg-type]


def test_topics_as_planned_have_no_finding_and_extra_broker_configs_are_fine() -> None:
    observed = {
        "p.requests": _as_planned(REQUESTS, configs={**REQUESTS.configs, "segment.ms": "1"}),
        "p.catalog": _as_planned(CATALOG),
    }
    assert diff([REQUESTS, CATALOG], observed) == []


def test_a_missing_topic() -> None:
    assert diff([CATALOG], {}) == [Finding("p.catalog", Kind.MISSING)]
    assert Finding("p.catalog", Kind.MISSING).line() == "p.catalog: missing"


def test_a_wrong_partition_count_is_a_difference() -> None:
    (fewer,) = diff([REQUESTS], {"p.requests": _as_planned(REQUESTS, partitions=4)})
    assert fewer.is_difference
    assert fewer.line() == (
        "p.requests: partitions is 4, planned 12 (at most 4 consumers of a group share it)"
    )
    (more,) = diff([REQUESTS], {"p.requests": _as_planned(REQUESTS, partitions=16)})
    assert more.line() == "p.requests: partitions is 16, planned 12"


def test_replicas_and_configs_that_differ() -> None:
    seen = _as_planned(CATALOG, replication_factor=1, configs={"cleanup.policy": "delete"})
    assert [f.line() for f in diff([CATALOG], {"p.catalog": seen})] == [
        "p.catalog: replication factor is 1, planned 3",
        "p.catalog: cleanup.policy is delete, planned compact",
    ]


def test_equal_values_written_differently_are_the_same() -> None:
    spec = TopicSpec("t", 1, True, 1, (("min.cleanable.dirty.ratio", "0.5"),))
    seen = ObservedTopic("t", 1, 1, {"cleanup.policy": "delete, compact",
                                     "min.cleanable.dirty.ratio": "0.50"})
    assert [f.what for f in diff([spec], {"t": seen})] == ["cleanup.policy"]
    seen = ObservedTopic("t", 1, 1, {"cleanup.policy": "compact",
                                     "min.cleanable.dirty.ratio": "0.50"})
    assert diff([spec], {"t": seen}) == []


def test_what_the_broker_does_not_report_is_a_note() -> None:
    seen = _as_planned(REQUESTS, configs={"cleanup.policy": "delete"})
    findings = diff([REQUESTS], {"p.requests": seen})
    assert [(f.kind, f.line()) for f in findings] == [
        (Kind.UNKNOWN, "p.requests: min.insync.replicas is not reported by the broker "
                       "(planned 2)"),
        (Kind.UNKNOWN, "p.requests: retention.ms is not reported by the broker "
                       "(planned 3600000)"),
    ]
    assert not any(f.is_difference for f in findings)
    unreadable = _as_planned(CATALOG, configs=None, configs_error="UnsupportedVersionError")
    (note,) = diff([CATALOG], {"p.catalog": unreadable})
    assert (note.is_difference, note.line()) == (False, (
        "p.catalog: configs cannot be read: UnsupportedVersionError "
        "(planned cleanup.policy=compact)"
    ))


def test_a_topic_whose_min_isr_exceeds_its_replicas_is_unwritable_whatever_the_plan() -> None:
    # The broker's default min.insync.replicas=2 on a topic made with one replica.
    spec = TopicSpec("p.results", 12)
    seen = ObservedTopic("p.results", 12, 1, {"cleanup.policy": "delete",
                                              "min.insync.replicas": "2"})
    (finding,) = diff([spec], {"p.results": seen})
    assert (finding.kind, finding.is_difference) == (Kind.UNWRITABLE, True)
    assert finding.line() == (
        "p.results: min.insync.replicas 2 with 1 replica: every acks=all write is refused"
    )
