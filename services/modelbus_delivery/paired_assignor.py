"""A sticky consumer-group assignor that keeps partition ``i`` of every topic on one member.

The request lanes are two topics with the same keys and partition count: a model's
requests are in partition ``i`` of both, and both must reach the same worker, so that the
model is warm once. Kafka's sticky assignor balances each topic on its own and may split
them; the range assignor pairs them but moves many partitions whenever a member joins.
This one assigns partition *numbers*: each member keeps the numbers it held (sent in its
join metadata) as far as the balance allows, the rest go to the least loaded, and a
member gets partition ``i`` of every topic it subscribes to for each number ``i`` it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from .logs import get_logger

log = get_logger("delivery")


def balance(count: int, held: Mapping[str, Iterable[int]]) -> dict[str, set[int]]:
    """Numbers ``0..count-1`` over the members of ``held`` (each with the numbers it held):
    as even as possible (sizes differ by one at most), moving as few as that allows."""
    members = sorted(held)
    if not members:
        return {}
    floor, extra = divmod(count, len(members))
    out: dict[str, set[int]] = {m: set() for m in members}
    taken: set[int] = set()
    previous = {m: sorted(n for n in set(held[m]) if 0 <= n < count) for m in members}
    # Each keeps up to the floor of what it held, then up to ``extra`` of them one more.
    for member in members:
        for n in previous[member]:
            if len(out[member]) >= floor:
                break
            if n not in taken:
                out[member].add(n)
                taken.add(n)
    ceilings = extra
    for member in members:
        if ceilings == 0:
            break
        spare = [n for n in previous[member] if n not in taken]
        if spare and len(out[member]) == floor:
            out[member].add(spare[0])
            taken.add(spare[0])
            ceilings -= 1
    for n in range(count):  # the rest: to the least loaded that may take one more
        if n in taken:
            continue
        at_ceiling = sum(1 for m in members if len(out[m]) > floor)
        limit = floor + 1 if at_ceiling < extra else floor
        candidates = [m for m in members if len(out[m]) < max(limit, 1)]
        member = min(candidates or members, key=lambda m: (len(out[m]), m))
        out[member].add(n)
        taken.add(n)
    return out


def _decode_held(user_data: bytes) -> list[int]:
    try:
        numbers = json.loads(user_data or b"[]")
    except ValueError:
        return []
    if not isinstance(numbers, list):
        return []
    return [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]


class PairedStickyAssignor:
    """The group protocol ``modelbus-paired-sticky`` (see the module doc); one per consumer,
    since it remembers the numbers its member holds."""

    name = "modelbus-paired-sticky"
    version = 0

    def __init__(self) -> None:
        self.held: set[int] = set()

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), json.dumps(sorted(self.held)).encode()
        )

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.held = {p for _topic, partitions in assignment.assignment for p in partitions}

    def assign(
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        counts: dict[str, int] = {}
        for metadata in members.values():
            for topic in metadata.subscription:
                partitions = cluster.partitions_for_topic(topic)
                if partitions is None:
                    log.warning("assign_without_metadata", topic=topic)
                    continue
                counts[topic] = len(partitions)
        count = max(counts.values(), default=0)
        if len(set(counts.values())) > 1:
            log.warning("paired_topics_differ", partitions=dict(sorted(counts.items())))
        numbers = balance(count, {m: _decode_held(md.user_data) for m, md in members.items()})
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                [
                    (topic, sorted(n for n in numbers[member] if n < counts[topic]))
                    for topic in sorted(set(metadata.subscription) & set(counts))
                ],
                b"",
            )
            for member, metadata in members.items()
        }


def assignment_strategies() -> tuple[Any, ...]:
    """The protocols a consumer offers, preferred first: the paired one, then Kafka's
    sticky one (a group whose members do not all offer the paired one uses it)."""
    return (PairedStickyAssignor(), StickyPartitionAssignor)
