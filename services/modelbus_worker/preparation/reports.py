"""The worker's serving reports to the catalog: a version being prepared, prepared, failed.

Reports ride on the discovered topic (which the catalog consumes) as ``ServingReport``
messages; the catalog shows the latest one as the entry's ``serving``. A report that the
entry already shows, from this worker, is not sent again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from modelbus_contract.errors import ModelbusError
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    ServingReport,
    version_key,
)
from modelbus_delivery.logs import get_logger
from modelbus_delivery.writer import PublishFailed, TopicWriter

log = get_logger("worker.serving_reports")

MAX_MESSAGE_CHARS = 500


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def serving_report(
    name: str, version: str, state: str, worker: str, *, step: str | None = None,
    error: ModelbusError | None = None, seconds: float | None = None,
) -> ServingReport:
    """The report of one state; a failure carries its code and the decisive line."""
    line = None
    if error is not None:
        lines = error.message.strip().splitlines()
        line = (lines[0] if lines else "")[:MAX_MESSAGE_CHARS]
    return ServingReport(
        name=name, version=version, state=state, worker=worker, step=step,
        error_code=error.code if error is not None else None, error_message=line,
        seconds=None if seconds is None else round(seconds, 3),
    )


def already_shown(entry: CatalogEntry | None, report: ServingReport) -> bool:
    """Whether the entry says what the report says (state, worker, step and error)."""
    shown = entry.serving if entry is not None else None
    return shown is not None and (
        shown.state, shown.worker, shown.step, shown.error_code, shown.error_message
    ) == (report.state, report.worker, report.step, report.error_code, report.error_message)


class ServingReporter:
    """Publishes serving reports through the worker's writer."""

    def __init__(
        self, writer: TopicWriter, topic: str, entries: Mapping[str, CatalogEntry],
        worker: str,
    ) -> None:
        self._writer = writer
        self._topic = topic
        self._entries = entries
        self.worker = worker

    async def send(self, report: ServingReport) -> bool:
        """Publish ``report`` unless its entry shows it already; False if Kafka failed."""
        if already_shown(self._entries.get(version_key(report.name, report.version)), report):
            return True
        try:
            await self._writer.send(
                self._topic, report.key, report.model_dump_json().encode(),
                {MESSAGE_TYPE_HEADER: SERVING_REPORT_TYPE},
            )
        except (PublishFailed, RuntimeError) as exc:
            log.warning("serving_report_failed", model=report.name,
                        model_version=report.version, state=report.state,
                        error=str(exc)[:300])
            return False
        log.info("serving_reported", model=report.name, model_version=report.version,
                 state=report.state, error_code=report.error_code)
        return True
