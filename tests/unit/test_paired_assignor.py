"""The paired sticky assignor: partition numbers balanced over the members, kept where
they were as far as the balance allows, and partition i of every topic on one member."""

from __future__ import annotations

from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from hypothesis import given
from hypothesis import strategies as st

from modelbus_delivery.paired_assignor import PairedStickyAssignor, balance


class Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.counts.get(topic)
        return None if count is None else set(range(count))


def _sizes_ok(out: dict[str, set[int]], count: int) -> bool:
    sizes = [len(v) for v in out.values()]
    return max(sizes) - min(sizes) <= 1 and sum(sizes) == count


def test_a_new_group_is_spread_evenly() -> None:
    out = balance(12, {"a": [], "b": [], "c": []})
    assert _sizes_ok(out, 12)
    assert set().union(*out.values()) == set(range(12))


def test_a_member_that_joins_takes_only_what_the_balance_needs() -> None:
    before = {"a": set(range(0, 6)), "b": set(range(6, 12))}
    after = balance(12, {**before, "c": set()})
    assert _sizes_ok(after, 12)
    assert after["a"] <= before["a"] and after["b"] <= before["b"]
    assert len(after["c"]) == 4


def test_a_member_that_leaves_hands_its_numbers_to_the_others_only() -> None:
    before = {"a": {0, 1, 2, 3}, "b": {4, 5, 6, 7}, "c": {8, 9, 10, 11}}
    after = balance(12, {"a": before["a"], "b": before["b"]})
    assert before["a"] <= after["a"] and before["b"] <= after["b"]
    assert _sizes_ok(after, 12)


@given(
    count=st.integers(0, 64),
    held=st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.lists(st.integers(-3, 80), max_size=20), min_size=1, max_size=8,
    ),
)
def test_every_number_once_evenly_and_a_balanced_group_stays_put(
    count: int, held: dict[str, list[int]]
) -> None:
    out = balance(count, held)
    assert _sizes_ok(out, count)
    seen = [n for numbers in out.values() for n in numbers]
    assert sorted(seen) == list(range(count))
    assert balance(count, out) == out  # nothing moves when nothing changed


def test_partition_i_of_both_lanes_goes_to_one_member() -> None:
    assignor = PairedStickyAssignor()
    members = {
        m: ConsumerProtocolMemberMetadata(0, ["req", "req.bulk"], b"") for m in ("w1", "w2", "w3")
    }
    out = assignor.assign(Cluster({"req": 12, "req.bulk": 12}), members)
    held: list[int] = []
    for assignment in out.values():
        by_topic = dict(assignment.assignment)
        assert by_topic["req"] == by_topic["req.bulk"]
        held += by_topic["req"]
    assert sorted(held) == list(range(12))


def test_a_member_sends_what_it_holds_and_keeps_it_after_a_rebalance() -> None:
    first, second = PairedStickyAssignor(), PairedStickyAssignor()
    first.on_assignment(ConsumerProtocolMemberAssignment(0, [("req", [1, 5]), ("b", [1, 5])], b""))
    second.on_assignment(ConsumerProtocolMemberAssignment(0, [("req", [0, 2]), ("b", [0, 2])], b""))
    members = {"x": first.metadata(["req", "b"]), "y": second.metadata(["req", "b"])}
    out = first.assign(Cluster({"req": 4, "b": 4}), members)
    # x held 5 too, which the topics no longer have: it gets 3, the number nobody held.
    assert dict(out["x"].assignment) == {"b": [1, 3], "req": [1, 3]}
    assert dict(out["y"].assignment) == {"b": [0, 2], "req": [0, 2]}


def test_unreadable_join_metadata_counts_as_holding_nothing() -> None:
    assignor = PairedStickyAssignor()
    members = {"x": ConsumerProtocolMemberMetadata(0, ["t"], b"{not json"),
               "y": ConsumerProtocolMemberMetadata(0, ["t"], b'{"a": 1}')}
    out = assignor.assign(Cluster({"t": 2}), members)
    assert sorted(p for a in out.values() for p in dict(a.assignment)["t"]) == [0, 1]
