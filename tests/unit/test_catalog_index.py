"""Catalog entries indexed by model name agree with a walk through them, whatever changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modelbus_contract.catalog_index import CatalogEntries, entries_named
from modelbus_contract.messages import CatalogEntry

NAMES = ("lin", "tree", "mol")


def _entry(name: str, version: str) -> CatalogEntry:
    return CatalogEntry(name=name, version=version, status="ready")


# A change: set key "<key_name>/<version>" to an entry named <entry_name> (a catalog record's
# key and its entry's name normally agree; a stray record may not), or remove the key.
_changes = st.lists(
    st.tuples(
        st.sampled_from(["set", "remove"]),
        st.sampled_from(NAMES), st.sampled_from(["1", "2", "3"]), st.sampled_from(NAMES),
    ),
    max_size=60,
)


@given(_changes)
def test_the_index_by_name_agrees_with_a_walk_after_any_changes(
    changes: list[tuple[str, str, str, str]],
) -> None:
    indexed = CatalogEntries()
    plain: dict[str, CatalogEntry] = {}
    for action, key_name, version, entry_name in changes:
        key = f"{key_name}/{version}"
        if action == "set":
            indexed[key] = plain[key] = _entry(entry_name, version)
        else:
            assert indexed.pop(key, None) == plain.pop(key, None)
    assert dict(indexed) == plain
    for name in (*NAMES, "absent"):
        walked = [e for e in plain.values() if e.name == name]
        assert sorted(indexed.named(name), key=repr) == sorted(walked, key=repr)
        assert sorted(entries_named(indexed, name), key=repr) == sorted(walked, key=repr)
        assert entries_named(plain, name) == walked


def test_a_mapping_given_at_the_start_is_indexed() -> None:
    entries = CatalogEntries({"lin/1": _entry("lin", "1"), "tree/2": _entry("tree", "2")})
    assert [e.version for e in entries.named("lin")] == ["1"]
    assert "tree/2" in entries and entries.get("tree/9") is None and len(entries) == 2
    del entries["lin/1"]
    assert entries.named("lin") == [] and list(entries) == ["tree/2"]
