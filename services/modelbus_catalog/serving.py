"""Serving states workers report about a version, merged into its catalog entry (pure logic).

The latest report wins, whichever worker sent it: the worker that owns a model's requests
changes when partitions move, and the new owner's word is the one that holds. A report
that changes nothing a reader sees (the same state, step, worker and error) is not
published again. Entries rebuilt from discovery events keep the state: an alias moved or
a tag changed leaves the prepared files and images as they were.
"""

from __future__ import annotations

from modelbus_contract.messages import CatalogEntry, ServingReport, ServingState, utc_now

_COMPARED = ("state", "worker", "step", "error_code", "error_message")


def with_serving(entry: CatalogEntry, report: ServingReport) -> CatalogEntry | None:
    """The entry with the report as its ``serving`` state; None when that changes nothing."""
    state = report.state_only()
    current = entry.serving
    if current is not None and all(
        getattr(current, f) == getattr(state, f) for f in _COMPARED
    ):
        return None
    return entry.model_copy(update={"serving": state, "updated_at": utc_now()})


def serving_kept(entry: CatalogEntry, previous: CatalogEntry | None) -> CatalogEntry:
    """A freshly built entry with the serving state of the one it replaces."""
    kept: ServingState | None = previous.serving if previous is not None else None
    if kept is None or entry.serving is not None:
        return entry
    return entry.model_copy(update={"serving": kept})
