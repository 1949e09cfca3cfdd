"""Catalog entries by key, indexed by model name (pure logic).

A worker resolves every request's model by name and a client picks every request's key by
name; over a plain mapping of ``name/version`` keys that is a walk through the whole catalog
per request, which a registry of a thousand versions makes the largest cost of a request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

from .messages import CatalogEntry


class CatalogEntries(MutableMapping[str, CatalogEntry]):
    """Entries by key (``name/version``); :meth:`named` answers without a walk."""

    def __init__(self, entries: Mapping[str, CatalogEntry] | None = None) -> None:
        self._by_key: dict[str, CatalogEntry] = {}
        self._by_name: dict[str, dict[str, CatalogEntry]] = {}
        for key, entry in (entries or {}).items():
            self[key] = entry

    def __getitem__(self, key: str) -> CatalogEntry:
        return self._by_key[key]

    def __setitem__(self, key: str, entry: CatalogEntry) -> None:
        old = self._by_key.get(key)
        if old is not None:
            self._unindex(key, old)
        self._by_key[key] = entry
        self._by_name.setdefault(entry.name, {})[key] = entry

    def __delitem__(self, key: str) -> None:
        self._unindex(key, self._by_key.pop(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def get(self, key: str, default: CatalogEntry | None = None) -> CatalogEntry | None:  # type: ignore[override]
        return self._by_key.get(key, default)

    def __repr__(self) -> str:
        return f"CatalogEntries({self._by_key!r})"

    def named(self, name: str) -> list[CatalogEntry]:
        """The entries of model ``name``, in no particular order."""
        return list(self._by_name.get(name, {}).values())

    def _unindex(self, key: str, entry: CatalogEntry) -> None:
        named = self._by_name.get(entry.name)
        if named is not None:
            named.pop(key, None)
            if not named:
                del self._by_name[entry.name]


def entries_named(entries: Mapping[str, CatalogEntry], name: str) -> list[CatalogEntry]:
    """The entries of model ``name``: from the index of a :class:`CatalogEntries`, by a walk
    through any other mapping."""
    if isinstance(entries, CatalogEntries):
        return entries.named(name)
    return [e for e in entries.values() if e.name == name]
