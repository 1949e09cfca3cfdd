"""The topic plan and its findings as people read them: a table, the ``kafka-topics.sh``
commands that make the topics, and the Kafka tool commands that would fix a difference
(pure: ``modelbus topics`` prints them; it never changes an existing topic itself).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from modelbus_contract.channels import TopicSpec
from modelbus_delivery.topic_diff import Finding, Kind


@dataclass(frozen=True)
class AdminTarget:
    """Where the Kafka tools connect: bootstrap servers and, for a secured cluster, the
    ``--command-config`` properties file of the admin client."""

    bootstrap_servers: str
    command_config: str | None = None

    def args(self) -> str:
        out = f"--bootstrap-server {shlex.quote(self.bootstrap_servers)}"
        if self.command_config:
            out += f" --command-config {shlex.quote(self.command_config)}"
        return out


def configs_text(spec: TopicSpec) -> str:
    return " ".join(f"{name}={value}" for name, value in spec.configs.items())


def table(specs: list[TopicSpec]) -> list[str]:
    """One line per topic: name, partitions, replicas, configs (aligned)."""
    rows = [("topic", "partitions", "replicas", "configs")] + [
        (s.name, str(s.partitions), str(s.replication_factor), configs_text(s)) for s in specs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  " + row[3]
        for row in rows
    ]


def create_command(spec: TopicSpec, target: AdminTarget) -> str:
    """``kafka-topics.sh`` that makes ``spec`` (nothing when it exists)."""
    configs = "".join(
        f" --config {shlex.quote(f'{name}={value}')}" for name, value in spec.configs.items()
    )
    return (
        f"kafka-topics.sh {target.args()} --create --if-not-exists "
        f"--topic {shlex.quote(spec.name)} --partitions {spec.partitions} "
        f"--replication-factor {spec.replication_factor}{configs}"
    )


def _alter_config(topic: str, name: str, value: str, target: AdminTarget) -> str:
    return (
        f"kafka-configs.sh {target.args()} --alter --entity-type topics "
        f"--entity-name {shlex.quote(topic)} --add-config {shlex.quote(f'{name}={value}')}"
    )


def fix(finding: Finding, spec: TopicSpec, target: AdminTarget) -> str | None:
    """What an operator may run (or do) about ``finding``; None for a note."""
    if finding.kind is Kind.MISSING:
        return create_command(spec, target)
    if finding.kind is Kind.UNWRITABLE:
        return (
            _alter_config(spec.name, "min.insync.replicas",
                          str(max(1, min(spec.replication_factor, _int(finding.actual)))),
                          target)
            + "   # or more replicas (kafka-reassign-partitions.sh)"
        )
    if finding.kind is not Kind.DIFFERS:
        return None
    if finding.what == "partitions":
        if _int(finding.actual) < spec.partitions:
            return (
                f"kafka-topics.sh {target.args()} --alter --topic {shlex.quote(spec.name)} "
                f"--partitions {spec.partitions}   # keys map to other partitions once"
            )
        return (
            "# a topic's partitions cannot be removed: make it again, or plan "
            f"{finding.actual} (MODELBUS_TOPIC_PARTITIONS)"
        )
    if finding.what == "replication factor":
        return (
            f"# kafka-reassign-partitions.sh {target.args()} with {spec.replication_factor} "
            "replicas per partition (a reassignment plan)"
        )
    if finding.planned is not None:
        return _alter_config(spec.name, finding.what, finding.planned, target)
    return None


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def plan_warnings(specs: list[TopicSpec]) -> list[str]:
    """What the plan itself risks on a production cluster."""
    if specs and min(s.replication_factor for s in specs) == 1:
        return [
            "# replication factor 1: one broker's loss loses these topics, and a broker "
            "default min.insync.replicas above 1 refuses every write to them "
            "(MODELBUS_TOPIC_REPLICATION_FACTOR, MODELBUS_TOPIC_MIN_INSYNC_REPLICAS)"
        ]
    return []
