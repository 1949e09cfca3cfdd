"""Discovery's fast path: which registered models a look at the most recently updated ones
shows changed, and when the next look is due (the clock is passed in)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modelbus_discovery.recent import ModelState, RecentChanges, RecentModels

TAG = (("datagrok", ""),)


def state(name: str, last_updated: int, **changes: Any) -> ModelState:
    return dataclasses.replace(ModelState(name, last_updated), **changes)


def seeded(window: int, *states: ModelState) -> RecentModels:
    recent = RecentModels(window, interval_s=0.5)
    assert recent.observe(states, now=0.0) == RecentChanges()
    return recent


def test_the_first_look_only_fills_the_memory_and_is_due_at_once() -> None:
    recent = RecentModels(window=3, interval_s=0.5)
    assert recent.due_in(now=100.0) == 0.0
    assert recent.observe([state("a", 2), state("b", 1)], now=100.0) == RecentChanges()
    assert recent.due_in(now=100.2) == pytest.approx(0.3)
    assert recent.due_in(now=101.0) == 0.0


def test_an_unchanged_look_asks_for_nothing() -> None:
    recent = seeded(3, state("a", 2, tags=TAG), state("b", 1))
    assert recent.observe([state("a", 2, tags=TAG), state("b", 1)], now=1.0) == RecentChanges()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"tags": TAG}),  # the datagrok tag set on the registered model (no new timestamp)
        ({"tags": TAG}, {}),  # ... and removed
        ({"tags": TAG}, {"tags": (*TAG, ("datagrok-inputs-0-semtype", "Molecule"))}),
        ({}, {"aliases": (("champion", "1"),)}),  # an alias set
        ({"aliases": (("champion", "1"),)}, {"aliases": (("champion", "2"),)}),  # ... moved
        ({}, {"latest_version_tags": (("2", TAG),)}),  # a tag on the newest version
        ({"latest_version_tags": (("2", TAG),)}, {"latest_version_tags": (("2", ()),)}),
    ],
    ids=["model-tag-set", "model-tag-removed", "model-tag-changed", "alias-set", "alias-moved",
         "version-tag-set", "version-tag-removed"],
)
def test_a_change_that_keeps_the_timestamp_is_seen(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    recent = seeded(3, state("a", 5), state("m", 4, **before), state("b", 3))
    changes = recent.observe([state("a", 5), state("m", 4, **after), state("b", 3)], now=1.0)
    assert changes == RecentChanges(models=("m",))


def test_a_new_version_moves_its_model_up_and_is_seen() -> None:
    recent = seeded(3, state("a", 5), state("b", 4), state("m", 3))
    changes = recent.observe([state("m", 9), state("a", 5), state("b", 4)], now=1.0)
    assert changes == RecentChanges(models=("m",))


def test_a_new_model_is_seen_and_the_one_it_pushes_out_is_not() -> None:
    recent = seeded(2, state("a", 5), state("b", 4))
    changes = recent.observe([state("new", 9), state("a", 5)], now=1.0)
    assert changes == RecentChanges(models=("new",))


def test_a_model_that_vanished_without_being_pushed_out_was_deleted_or_renamed() -> None:
    recent = seeded(3, state("a", 5), state("gone", 4), state("b", 3))
    # "c" (older than "gone") moved into view: "gone" cannot have been pushed out.
    changes = recent.observe([state("a", 5), state("b", 3), state("c", 2)], now=1.0)
    assert changes == RecentChanges(models=("c", "gone"))


def test_in_a_registry_smaller_than_the_window_every_vanished_model_is_gone() -> None:
    recent = seeded(10, state("renamed", 7), state("b", 3))
    changes = recent.observe([state("new-name", 8), state("b", 3)], now=1.0)
    assert changes == RecentChanges(models=("new-name", "renamed"))
    assert recent.observe([], now=2.0) == RecentChanges(models=("b", "new-name"))


def test_a_full_look_in_which_everything_changed_asks_for_a_full_listing() -> None:
    recent = seeded(2, state("a", 5), state("b", 4))
    changes = recent.observe([state("x", 9), state("y", 8)], now=1.0)
    assert changes.overrun
    assert not recent.observe([state("z", 10), state("x", 9)], now=2.0).overrun


def test_a_look_shorter_than_the_window_sees_everything_even_if_all_changed() -> None:
    recent = seeded(3, state("a", 5), state("b", 4))
    changes = recent.observe([state("a", 7, tags=TAG), state("b", 6)], now=1.0)
    assert changes == RecentChanges(models=("a", "b"), overrun=False)


def test_a_failed_look_keeps_the_memory_and_waits_one_interval() -> None:
    recent = seeded(3, state("a", 5), state("m", 4))
    recent.failed(now=10.0)
    assert recent.due_in(now=10.0) == pytest.approx(0.5)
    assert recent.due_in(now=10.5) == 0.0
    # What changed during the failures is seen by the next look that answers.
    changes = recent.observe([state("a", 5), state("m", 4, tags=TAG)], now=10.5)
    assert changes == RecentChanges(models=("m",))


def test_a_window_needs_a_model_and_the_interval_a_length() -> None:
    with pytest.raises(ValueError):
        RecentModels(window=0, interval_s=0.5)
    with pytest.raises(ValueError):
        RecentModels(window=5, interval_s=0)
