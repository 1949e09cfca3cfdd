"""The catalog's handler: a record of the discovered topic in, the catalog records out.

Decisions only, no Kafka and no waiting: what the catalog holds now (the view's entries,
overlaid by what this instance published since) and a version's facts make the record to
publish. The facts come through an injected port (the service reads them from the
registry and waits out its outages there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from modelbus_contract.interpreters import InterpreterSettings
from modelbus_contract.messages import (
    MODEL_PROBLEM_TYPE,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    ServingReport,
    message_type,
    version_key,
)
from modelbus_delivery.logs import get_logger
from modelbus_delivery.records import Inbound, Outgoing, PoisonRecord

from .entry import ModelFacts, build_entry
from .serving import serving_kept, with_serving
from .worker_problems import carried_over, with_report

log = get_logger("catalog")

M = TypeVar("M", bound=BaseModel)

ReadFacts = Callable[[DiscoveryEvent], Awaitable[ModelFacts]]
"""Port: a version's facts from the registry (never raises: a version that cannot be read
gets facts that say why)."""


class KnownEntries:
    """The catalog as this instance knows it: the view's entries, overlaid by the ones it
    published itself. A worker's report and a discovery event of one version may follow
    each other faster than the view reads the first entry back."""

    def __init__(self, view: Mapping[str, CatalogEntry]) -> None:
        self._view = view
        self._published: dict[str, CatalogEntry | None] = {}  # None: removed

    def get(self, key: str) -> CatalogEntry | None:
        if key in self._published:
            return self._published[key]
        return self._view.get(key)

    def published(self, key: str, entry: CatalogEntry | None) -> None:
        self._published[key] = entry


def rebuilt_entry(
    event: DiscoveryEvent, facts: ModelFacts, previous: CatalogEntry | None, tag: str,
    interpreters: InterpreterSettings,
) -> CatalogEntry:
    """The entry a found or updated version gets: built from its tags and facts, keeping
    what workers reported about the entry it replaces."""
    built = build_entry(event, facts, tag, interpreters)
    return serving_kept(carried_over(built, previous), previous)


class CatalogHandler:
    """Turns each record of the discovered topic into the catalog records to publish.

    ``tag`` is the discovery tag (its annotations describe parameters), ``interpreters``
    what workers offer, ``entries`` the catalog as the view reads it.
    """

    def __init__(
        self, catalog_topic: str, tag: str, interpreters: InterpreterSettings,
        entries: Mapping[str, CatalogEntry], read: ReadFacts,
    ) -> None:
        self.topic = catalog_topic  # the catalog topic
        self._tag = tag
        self._interpreters = interpreters
        self.known = KnownEntries(entries)
        self._read = read

    async def handle_record(self, record: Inbound) -> list[Outgoing]:
        """One record of the discovered topic → the entry (or tombstone) to publish."""
        if record.value is None:
            return []  # a tombstone compacting the discovered topic: nothing to announce
        kind = message_type(record.headers)
        if kind == MODEL_PROBLEM_TYPE:
            return self.handle_report(
                _parsed(ModelProblemReport, record.value, "a model problem report"))
        if kind == SERVING_REPORT_TYPE:
            return self.handle_serving(_parsed(ServingReport, record.value, "a serving report"))
        if kind:  # a message of a newer writer: not for this catalog to judge
            log.info("discovered_message_skipped", message_type=kind[:80],
                     partition=record.partition, offset=record.offset)
            return []
        event = _parsed(DiscoveryEvent, record.value, "a discovery event")
        return [await self.handle(event)]

    async def handle(self, event: DiscoveryEvent) -> Outgoing:
        """The entry (or tombstone) for one discovery event."""
        with structlog.contextvars.bound_contextvars(model=event.name, model_version=event.version):
            if event.kind == "removed":
                log.info("catalog_entry_removed")
                self.known.published(event.key, None)
                return Outgoing(self.topic, event.key.encode(), None)
            facts = await self._read(event)
            entry = rebuilt_entry(
                event, facts, self.known.get(event.key), self._tag, self._interpreters
            )
            log.info(
                "catalog_entry_built", status=entry.status, problems=len(entry.problems),
                inputs=[p.name for p in entry.inputs], outputs=[p.name for p in entry.outputs],
            )
            return self._publish(entry)

    def handle_report(self, report: ModelProblemReport) -> list[Outgoing]:
        """A worker's report merged into the version's current entry (re-published), or
        nothing when the version has no entry or the entry already says so."""
        with structlog.contextvars.bound_contextvars(model=report.name,
                                                     model_version=report.version):
            entry = self.known.get(version_key(report.name, report.version))
            if entry is None:
                log.info("model_problem_for_unknown_version", error_code=report.error_code)
                return []
            merged = with_report(entry, report)
            if merged is None:
                return []
            log.info("catalog_entry_worker_problem", error_code=report.error_code,
                     problems=len(merged.problems))
            return [self._publish(merged)]

    def handle_serving(self, report: ServingReport) -> list[Outgoing]:
        """A worker's serving state put in the version's current entry (re-published), or
        nothing when the version has no entry or the entry already says so."""
        with structlog.contextvars.bound_contextvars(model=report.name,
                                                     model_version=report.version):
            entry = self.known.get(version_key(report.name, report.version))
            if entry is None:
                log.info("serving_report_for_unknown_version", state=report.state)
                return []
            merged = with_serving(entry, report)
            if merged is None:
                return []
            log.info("catalog_entry_serving", state=report.state, worker=report.worker,
                     error_code=report.error_code)
            return [self._publish(merged)]

    def _publish(self, entry: CatalogEntry) -> Outgoing:
        self.known.published(entry.key, entry)
        return Outgoing(
            self.topic, entry.key.encode(), entry.model_dump_json().encode(),
            {"schema_version": entry.schema_version},
        )


def _parsed(message: type[M], value: bytes, what: str) -> M:
    """``value`` read as ``message``; a record that is not one is poison."""
    try:
        return message.model_validate_json(value)
    except ValidationError as exc:
        raise PoisonRecord(f"not {what}: {str(exc)[:500]}") from None
