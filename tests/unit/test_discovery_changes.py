"""Discovery's diff: found / updated / removed, and nothing when nothing changed."""

from __future__ import annotations

from modelbus_contract.messages import DiscoveryEvent
from modelbus_discovery.changes import VersionSnapshot, diff, fold


def _snap(version: str = "1", **tags: str) -> VersionSnapshot:
    return VersionSnapshot(name="m", version=version, model_tags={"datagrok": "", **tags})


def _apply(known: dict[str, DiscoveryEvent], events: list[DiscoveryEvent]) -> None:
    for e in events:
        fold(known, e)


def test_first_listing_finds_everything_in_version_order() -> None:
    events = diff({}, [_snap("10"), _snap("2")])
    assert [(e.kind, e.version) for e in events] == [("found", "2"), ("found", "10")]


def test_unchanged_listing_emits_nothing() -> None:
    known: dict[str, DiscoveryEvent] = {}
    _apply(known, diff(known, [_snap()]))
    assert diff(known, [_snap()]) == []


def test_changed_tag_is_an_update_and_vanished_version_a_removal() -> None:
    known: dict[str, DiscoveryEvent] = {}
    _apply(known, diff(known, [_snap("1"), _snap("2")]))
    events = diff(known, [_snap("1", **{"datagrok-inputs-0-semtype": "Molecule"})])
    assert [(e.kind, e.version) for e in events] == [("updated", "1"), ("removed", "2")]
    _apply(known, events)
    assert diff(known, [_snap("1", **{"datagrok-inputs-0-semtype": "Molecule"})]) == []


def test_removed_version_that_comes_back_is_found_again() -> None:
    known: dict[str, DiscoveryEvent] = {}
    _apply(known, diff(known, [_snap()]))
    _apply(known, diff(known, []))
    assert [e.kind for e in diff(known, [_snap()])] == ["found"]


def test_alias_change_is_an_update() -> None:
    known: dict[str, DiscoveryEvent] = {}
    _apply(known, diff(known, [_snap()]))
    moved = VersionSnapshot(name="m", version="1", model_tags={"datagrok": ""}, aliases=("prod",))
    events = diff(known, [moved])
    assert [(e.kind, e.aliases) for e in events] == [("updated", ["prod"])]


def test_listing_of_one_model_removes_only_versions_of_that_model() -> None:
    known: dict[str, DiscoveryEvent] = {}
    other = VersionSnapshot(name="other", version="1", model_tags={"datagrok": ""})
    _apply(known, diff(known, [_snap("1"), _snap("2"), other]))
    events = diff(known, [_snap("1")], model="m")
    assert [(e.kind, e.name, e.version) for e in events] == [("removed", "m", "2")]
    _apply(known, events)
    assert [(e.kind, e.key) for e in diff(known, [], model="other")] == [("removed", "other/1")]
    assert diff(known, [_snap("1")], model="m") == []
