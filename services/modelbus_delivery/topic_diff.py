"""What differs between the topic plan and the topics a broker holds (pure).

``modelbus topics apply`` and ``check`` print these findings; neither ever changes an
existing topic. A finding is a difference (the topic is not as planned, or cannot take a
write at all) or a note (what the broker does not report, e.g. a config the embedded broker
does not keep): only differences fail ``check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from modelbus_contract.channels import TopicSpec


@dataclass(frozen=True)
class ObservedTopic:
    """A topic as the broker describes it.

    ``replication_factor``: the fewest replicas of any partition. ``configs``: as
    DescribeConfigs reports them (a broker may leave some out); ``None`` when they could not
    be read, ``configs_error`` saying why.
    """

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] | None = None
    configs_error: str | None = None


class Kind(Enum):
    MISSING = "missing"
    DIFFERS = "differs"  # not as planned
    UNWRITABLE = "unwritable"  # refuses every acks=all write, whatever the plan says
    UNKNOWN = "unknown"  # the broker does not say: a note, not a difference


@dataclass(frozen=True)
class Finding:
    """One thing about one topic; ``what``: ``partitions``, ``replication factor`` or a
    config name."""

    topic: str
    kind: Kind
    what: str = ""
    planned: str | None = None
    actual: str | None = None
    detail: str = ""

    @property
    def is_difference(self) -> bool:
        return self.kind is not Kind.UNKNOWN

    def line(self) -> str:
        """One readable line."""
        if self.kind is Kind.MISSING:
            return f"{self.topic}: missing"
        if self.kind is Kind.UNKNOWN:
            return f"{self.topic}: {self.what} {self.detail} (planned {self.planned})"
        if self.kind is Kind.UNWRITABLE:
            return f"{self.topic}: {self.detail}"
        return f"{self.topic}: {self.what} is {self.actual}, planned {self.planned}" + (
            f" ({self.detail})" if self.detail else ""
        )


def _same(name: str, planned: str, actual: str) -> bool:
    if name == "cleanup.policy":  # a list: "compact,delete" is "delete,compact"
        return sorted(planned.replace(" ", "").split(",")) == sorted(
            actual.replace(" ", "").split(",")
        )
    try:
        return float(planned) == float(actual)
    except ValueError:
        return planned == actual


def _partitions(spec: TopicSpec, seen: ObservedTopic) -> list[Finding]:
    if seen.partitions == spec.partitions:
        return []
    detail = (
        f"at most {seen.partitions} consumers of a group share it"
        if seen.partitions < spec.partitions else ""
    )
    return [Finding(spec.name, Kind.DIFFERS, "partitions", str(spec.partitions),
                    str(seen.partitions), detail)]


def _replicas(spec: TopicSpec, seen: ObservedTopic) -> list[Finding]:
    if seen.replication_factor == spec.replication_factor:
        return []
    return [Finding(spec.name, Kind.DIFFERS, "replication factor",
                    str(spec.replication_factor), str(seen.replication_factor))]


def _configs(spec: TopicSpec, seen: ObservedTopic) -> list[Finding]:
    if seen.configs is None:
        why = seen.configs_error or "not reported"
        return [Finding(spec.name, Kind.UNKNOWN, "configs", ", ".join(
            f"{k}={v}" for k, v in spec.configs.items()), None, f"cannot be read: {why}")]
    findings = []
    for name, planned in spec.configs.items():
        actual = seen.configs.get(name)
        if actual is None:
            findings.append(Finding(spec.name, Kind.UNKNOWN, name, planned, None,
                                    "is not reported by the broker"))
        elif not _same(name, planned, actual):
            findings.append(Finding(spec.name, Kind.DIFFERS, name, planned, actual))
    return findings


def _writable(spec: TopicSpec, seen: ObservedTopic) -> list[Finding]:
    """A topic whose min.insync.replicas (its own or the broker's default, as reported)
    exceeds its replicas refuses every write with acks=all: every modelbus producer's."""
    raw = (seen.configs or {}).get("min.insync.replicas")
    try:
        min_isr = int(raw) if raw is not None else None
    except ValueError:
        return []
    if min_isr is None or min_isr <= seen.replication_factor:
        return []
    return [Finding(
        spec.name, Kind.UNWRITABLE, "min.insync.replicas", actual=raw,
        detail=f"min.insync.replicas {min_isr} with {seen.replication_factor} "
        f"replica{'s' if seen.replication_factor != 1 else ''}: every acks=all write is refused",
    )]


def diff(planned: list[TopicSpec], observed: Mapping[str, ObservedTopic]) -> list[Finding]:
    """Every finding about ``planned``'s topics, in plan order."""
    findings: list[Finding] = []
    for spec in planned:
        seen = observed.get(spec.name)
        if seen is None:
            findings.append(Finding(spec.name, Kind.MISSING))
            continue
        for check in (_partitions, _replicas, _configs, _writable):
            findings.extend(check(spec, seen))
    return findings
