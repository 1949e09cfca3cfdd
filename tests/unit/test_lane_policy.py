"""The lane policy: the bulk lane's room from the records in flight and a clock the test
moves; nothing here waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelbus_delivery.lane_policy import LanePolicy, LaneShares


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _policy(budget: int = 100, hold_s: float = 0.5) -> tuple[LanePolicy, Clock]:
    clock = Clock()
    return LanePolicy(LaneShares(budget, 0.75, 0.05, hold_s), clock), clock


def test_quiet_bulk_takes_its_share_and_leaves_the_rest_for_interactive() -> None:
    policy, _ = _policy()
    assert policy.bulk_room(interactive_in_flight=0, bulk_in_flight=0) == 75
    assert policy.bulk_room(interactive_in_flight=0, bulk_in_flight=70) == 5
    assert policy.bulk_room(interactive_in_flight=0, bulk_in_flight=75) == 0


def test_while_interactive_work_runs_bulk_keeps_only_its_minimum_share() -> None:
    policy, _ = _policy()
    assert policy.bulk_room(interactive_in_flight=1, bulk_in_flight=0) == 5
    assert policy.bulk_room(interactive_in_flight=1, bulk_in_flight=3) == 2
    assert policy.bulk_room(interactive_in_flight=1, bulk_in_flight=40) == 0


def test_bulk_stays_at_its_minimum_for_the_hold_time_after_interactive_work() -> None:
    policy, clock = _policy(hold_s=0.5)
    policy.interactive_seen()
    clock.now += 0.49
    assert policy.busy(0)
    assert policy.bulk_room(0, 0) == 5
    clock.now += 0.01
    assert not policy.busy(0)
    assert policy.bulk_room(0, 0) == 75


def test_without_interactive_work_ever_the_lane_is_quiet() -> None:
    policy, _ = _policy()
    assert not policy.busy(0)


@pytest.mark.parametrize(("budget", "bulk_max", "bulk_min"), [
    (1, 1, 1), (2, 1, 1), (4, 3, 1), (256, 192, 12), (1000, 750, 50),
])
def test_shares_of_small_and_large_budgets(budget: int, bulk_max: int, bulk_min: int) -> None:
    shares = LaneShares(budget, 0.75, 0.05)
    assert (shares.bulk_max, shares.bulk_min) == (bulk_max, bulk_min)


@given(
    budget=st.integers(1, 10_000), share=st.floats(0.001, 1.0), minimum=st.floats(0.001, 1.0),
    interactive=st.integers(0, 10_000), bulk=st.integers(0, 10_000),
)
def test_bulk_is_never_starved_and_never_takes_the_whole_budget(
    budget: int, share: float, minimum: float, interactive: int, bulk: int
) -> None:
    shares = LaneShares(budget, share, minimum)
    policy = LanePolicy(shares, Clock())
    assert 1 <= shares.bulk_min <= shares.bulk_max
    assert shares.bulk_max < budget or budget == 1
    room = policy.bulk_room(interactive, bulk)
    assert room == max((shares.bulk_min if interactive else shares.bulk_max) - bulk, 0)
