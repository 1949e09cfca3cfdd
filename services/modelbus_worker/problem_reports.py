"""The worker's reports to the catalog about versions it cannot start (and, later, can).

A start that fails with a code the model's owner has to act on (``model_unavailable``)
is reported once on the discovered topic; the catalog lists it in the version's entry.
When such a version later starts, the worker reports that and the catalog removes the
problem. A report the entry already reflects is not sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from modelbus_contract.errors import ModelbusError, ModelUnavailable
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    MODEL_PROBLEM_TYPE,
    WORKER_PROBLEM_PREFIX,
    CatalogEntry,
    ModelProblemReport,
    version_key,
    worker_problem,
)
from modelbus_delivery.logs import get_logger
from modelbus_delivery.writer import PublishFailed, TopicWriter

log = get_logger("worker.problem_reports")

REPORTED_CODES = frozenset({ModelUnavailable.code})
_UNSENT = object()

def report_for(
    entry: CatalogEntry | None, name: str, version: str, error: ModelbusError | None
) -> ModelProblemReport | None:
    """What to tell the catalog after a start of ``name``/``version`` (None: nothing)."""
    if error is None:
        shown = entry is not None and any(
            p.startswith(WORKER_PROBLEM_PREFIX) for p in entry.problems)
        return ModelProblemReport(name=name, version=version) if shown else None
    if error.code not in REPORTED_CODES:
        return None
    line = error.message.strip().splitlines()[0] if error.message.strip() else ""
    report = ModelProblemReport(name=name, version=version, error_code=error.code,
                                error_message=line)
    if entry is not None and worker_problem(error.code, line) in entry.problems:
        return None
    return report


class ProblemReporter:
    """A start listener that publishes reports through the worker's writer."""

    def __init__(
        self, writer: TopicWriter, topic: str, entries: Mapping[str, CatalogEntry]
    ) -> None:
        self._writer = writer
        self._topic = topic
        self._entries = entries
        self._sent: dict[str, str | None] = {}  # key → last problem sent (None: "started")
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(
        self, name: str, version: str, error: ModelbusError | None, seconds: float = 0.0
    ) -> None:
        key = version_key(name, version)
        report = report_for(self._entries.get(key), name, version, error)
        if report is None or self._sent.get(key, _UNSENT) == report.problem:
            return  # the catalog says so already, or will once it reads what was sent
        self._sent[key] = report.problem
        task = asyncio.get_running_loop().create_task(self._send(report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, report: ModelProblemReport) -> None:
        try:
            await self._writer.send(
                self._topic, report.key, report.model_dump_json().encode(),
                {MESSAGE_TYPE_HEADER: MODEL_PROBLEM_TYPE},
            )
        except (PublishFailed, RuntimeError) as exc:
            self._sent.pop(version_key(report.name, report.version), None)
            log.warning("model_problem_report_failed", model=report.name,
                        model_version=report.version, error=str(exc)[:300])
            return
        log.info("model_problem_reported", model=report.name, model_version=report.version,
                 error_code=report.error_code)

    async def close(self) -> None:
        """Wait for the reports being sent."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
