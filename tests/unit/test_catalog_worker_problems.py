"""Worker problem reports on the discovered topic, merged into catalog entries."""

from __future__ import annotations

import pytest

from modelbus.wiring import build_catalog
from modelbus_catalog.service import CatalogService
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    MODEL_PROBLEM_TYPE,
    CatalogEntry,
    ModelProblemReport,
    worker_problem,
)
from modelbus_delivery.records import Inbound, PoisonRecord

from .test_catalog_handler import SETTINGS, FixedReader, _event, _record

DECISIVE = "docopt==0.6.2: no wheel for Python 3.11 / manylinux_2_36_x86_64 (only a source " \
    "distribution)"
PROBLEM = f"worker: model_unavailable: {DECISIVE}"


def _report(code: str | None, message: str | None = None) -> Inbound:
    report = ModelProblemReport(name="m", version="1", error_code=code, error_message=message)
    return Inbound(SETTINGS.topics.discovered, 0, 9, report.key.encode(),
                   report.model_dump_json().encode(),
                   ((MESSAGE_TYPE_HEADER, MODEL_PROBLEM_TYPE.encode()),))


async def _published(service: CatalogService, record: Inbound) -> list[CatalogEntry]:
    return [CatalogEntry.model_validate_json(o.value or b"") for o in
            await service.handle_record(record)]


def test_the_problem_is_the_code_and_the_first_line_bounded() -> None:
    assert worker_problem("model_unavailable", f"{DECISIVE}\npip: noise") == PROBLEM
    assert worker_problem("model_unavailable", "") == "worker: model_unavailable"
    assert len(worker_problem("model_failed", "x" * 900)) == 500


async def test_a_report_adds_the_problem_once_and_keeps_the_status() -> None:
    service = build_catalog(SETTINGS, FixedReader())
    await service.handle_record(_record(_event("found")))
    (entry,) = await _published(service, _report("model_unavailable", f"{DECISIVE}\npip: x"))
    assert (entry.key, entry.status, entry.problems) == ("m/1", "ready", [PROBLEM])
    # The same report again changes nothing: nothing is published.
    assert await _published(service, _report("model_unavailable", DECISIVE)) == []


async def test_a_newer_report_replaces_the_older_and_a_start_removes_it() -> None:
    service = build_catalog(SETTINGS, FixedReader())
    await service.handle_record(_record(_event("found")))
    await service.handle_record(_report("model_unavailable", DECISIVE))
    (entry,) = await _published(service, _report("model_failed", "model failed to load"))
    assert entry.problems == ["worker: model_failed: model failed to load"]
    (entry,) = await _published(service, _report(None))
    assert (entry.status, entry.problems) == ("ready", [])
    assert await _published(service, _report(None)) == []


async def test_an_entry_rebuilt_from_discovery_keeps_the_worker_problem() -> None:
    service = build_catalog(SETTINGS, FixedReader())
    await service.handle_record(_record(_event("found")))
    await service.handle_record(_report("model_unavailable", DECISIVE))
    (entry,) = await _published(service, _record(_event("updated")))
    assert entry.problems == [PROBLEM]


async def test_a_report_for_a_version_without_entry_publishes_nothing() -> None:
    service = build_catalog(SETTINGS, FixedReader())
    assert await service.handle_record(_report("model_unavailable", DECISIVE)) == []
    await service.handle_record(_record(_event("found")))
    await service.handle_record(_record(_event("removed")))
    assert await service.handle_record(_report("model_unavailable", DECISIVE)) == []


async def test_a_report_that_cannot_be_read_is_poison() -> None:
    bad = Inbound(SETTINGS.topics.discovered, 0, 9, b"m/1#worker", b"{}",
                  ((MESSAGE_TYPE_HEADER, MODEL_PROBLEM_TYPE.encode()),))
    with pytest.raises(PoisonRecord, match="not a model problem report"):
        await build_catalog(SETTINGS, FixedReader()).handle_record(bad)
