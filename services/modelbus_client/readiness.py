"""Whether a model version is prepared, as its catalog entry says (pure logic)."""

from __future__ import annotations

from collections.abc import Mapping

from modelbus_contract.errors import ModelNotFound, error_from_code
from modelbus_contract.messages import FAILED, CatalogEntry
from modelbus_contract.resolve import resolve


def prepared_entry(
    entries: Mapping[str, CatalogEntry], model: str, version: str | None
) -> CatalogEntry | None:
    """The entry of ``model``/``version`` (a number, ``@alias`` or None for the newest
    ready) once a worker reports it prepared; None while it is not (or not catalogued
    yet). Raises ``ModelInvalid`` for an invalid version, and the error of a failed
    preparation (e.g. ``ModelUnavailable``)."""
    try:
        entry = resolve(entries, model, version)
    except ModelNotFound:
        return None
    serving = entry.serving
    if serving is None:
        return None
    if serving.state == FAILED:
        raise error_from_code(
            serving.error_code or "internal",
            f"{entry.key} could not be prepared: {serving.error_message or 'no reason given'}",
        )
    return entry if serving.prepared else None
