"""Which catalog entry a request means: a version number, ``@alias`` or the newest READY
(the worker resolves requests with it; the client, a version to wait for)."""

from __future__ import annotations

from collections.abc import Mapping

from modelbus_contract.catalog_index import entries_named
from modelbus_contract.errors import ModelInvalid, ModelNotFound
from modelbus_contract.messages import CatalogEntry, version_order


def resolve(entries: Mapping[str, CatalogEntry], name: str, spec: str | None) -> CatalogEntry:
    """The entry for ``name`` and ``spec``; ModelNotFound / ModelInvalid say why not."""
    versions = sorted(entries_named(entries, name), key=lambda e: version_order(e.version))
    if not versions:
        raise ModelNotFound(f"no model named {name!r} in the catalog")
    if spec is None or spec in ("latest", "@latest"):
        ready = [e for e in versions if e.status == "ready"]
        if not ready:
            raise ModelInvalid(
                f"model {name!r} has no valid version: {_problems(versions[-1])}"
            )
        return ready[-1]
    if spec.startswith("@"):
        alias = spec[1:]
        matches = [e for e in versions if alias in e.aliases]
        if not matches:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        entry = matches[-1]
    else:
        found = [e for e in versions if e.version == spec]
        if not found:
            known = ", ".join(e.version for e in versions)
            raise ModelNotFound(f"model {name!r} has no version {spec!r} (known: {known})")
        entry = found[0]
    if entry.status != "ready":
        raise ModelInvalid(f"{name}/{entry.version} is invalid: {_problems(entry)}")
    return entry


def _problems(entry: CatalogEntry) -> str:
    return "; ".join(entry.problems) or "no reason recorded"
