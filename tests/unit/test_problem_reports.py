"""What the worker tells the catalog after a start (pure decision)."""

from __future__ import annotations

from modelbus_contract.errors import InternalError, ModelFailed, ModelUnavailable
from modelbus_contract.messages import CatalogEntry
from modelbus_worker.problem_reports import report_for

DECISIVE = "docopt==0.6.2: no wheel for Python 3.11 / manylinux_2_36_x86_64 (only a source " \
    "distribution)"
PROBLEM = f"worker: model_unavailable: {DECISIVE}"


def entry(*problems: str) -> CatalogEntry:
    return CatalogEntry(name="m", version="1", status="ready", problems=list(problems))


def test_an_unavailable_model_is_reported_with_the_decisive_line_only() -> None:
    error = ModelUnavailable(f"{DECISIVE}\npip: No matching distribution found")
    report = report_for(entry(), "m", "1", error)
    assert report is not None
    assert (report.key, report.error_code, report.error_message, report.problem) == (
        "m/1#worker", "model_unavailable", DECISIVE, PROBLEM
    )


def test_a_problem_the_entry_shows_already_is_not_reported_again() -> None:
    assert report_for(entry(PROBLEM), "m", "1", ModelUnavailable(DECISIVE)) is None


def test_failures_that_are_not_the_models_dependencies_are_not_reported() -> None:
    assert report_for(entry(), "m", "1", InternalError("docker down")) is None
    assert report_for(entry(), "m", "1", ModelFailed("model failed to load")) is None


def test_a_start_is_reported_only_when_the_entry_shows_a_worker_problem() -> None:
    report = report_for(entry("no signature", PROBLEM), "m", "1", None)
    assert report is not None and (report.error_code, report.problem) == (None, None)
    assert report_for(entry("no signature"), "m", "1", None) is None
    assert report_for(None, "m", "1", None) is None
