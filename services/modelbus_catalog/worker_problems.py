"""Problems workers report about a version, merged into its catalog entry (pure logic).

An entry lists at most one worker problem (the latest report wins); a report that the
version started removes it. Entries rebuilt from discovery events keep it, since the
worker's word still holds. ``status`` is never changed: a later configuration (a package
index, an interpreter) may make the version start.
"""

from __future__ import annotations

from modelbus_contract.messages import (
    WORKER_PROBLEM_PREFIX,
    CatalogEntry,
    ModelProblemReport,
    utc_now,
)


def worker_problems(entry: CatalogEntry | None) -> list[str]:
    return [p for p in entry.problems if p.startswith(WORKER_PROBLEM_PREFIX)] if entry else []


def with_report(entry: CatalogEntry, report: ModelProblemReport) -> CatalogEntry | None:
    """The entry with the report's problem in place of any earlier worker problem; None
    when that changes nothing (the report is a repeat)."""
    own = [p for p in entry.problems if not p.startswith(WORKER_PROBLEM_PREFIX)]
    problem = report.problem
    problems = [*own, problem] if problem else own
    if problems == entry.problems:
        return None
    return entry.model_copy(update={"problems": problems, "updated_at": utc_now()})


def carried_over(entry: CatalogEntry, previous: CatalogEntry | None) -> CatalogEntry:
    """A freshly built entry with the worker problems of the one it replaces."""
    kept = [p for p in worker_problems(previous) if p not in entry.problems]
    if not kept:
        return entry
    return entry.model_copy(update={"problems": [*entry.problems, *kept]})
