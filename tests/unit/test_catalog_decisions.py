"""The catalog's pure handler on its own: a discovered record and what the catalog holds in,
the records to publish out; the registry read is a fake port."""

from __future__ import annotations

from modelbus_catalog.entry import ModelFacts
from modelbus_catalog.handler import CatalogHandler
from modelbus_contract.interpreters import InterpreterSettings
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    MODEL_PROBLEM_TYPE,
    SERVING_REPORT_TYPE,
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    ServingReport,
    ServingState,
)
from modelbus_delivery.records import Inbound, Outgoing

CATALOG, DISCOVERED = "t.catalog", "t.discovered"
SIGNATURE = {"inputs": '[{"type": "double", "name": "a"}]'}


class FakeRead:
    """The registry port: the facts it is given, for every version; remembers the asks."""

    def __init__(self, facts: ModelFacts | None = None) -> None:
        self.facts = facts or ModelFacts(signature=SIGNATURE, flavors={"python_function": {}})
        self.asked: list[str] = []

    async def __call__(self, event: DiscoveryEvent) -> ModelFacts:
        self.asked.append(event.key)
        return self.facts


def _handler(
    view: dict[str, CatalogEntry] | None = None, read: FakeRead | None = None
) -> CatalogHandler:
    return CatalogHandler(CATALOG, "datagrok", InterpreterSettings(), view or {},
                          read or FakeRead())


def _discovered(kind: str) -> Inbound:
    event = DiscoveryEvent(kind=kind, name="m", version="1",  # type: ignore[arg-type]
                           model_tags={"datagrok": ""}, fingerprint="f")
    return Inbound(DISCOVERED, 0, 3, b"m/1", event.model_dump_json().encode())


def _problem(code: str) -> Inbound:
    report = ModelProblemReport(name="m", version="1", error_code=code, error_message="x")
    return Inbound(DISCOVERED, 0, 4, report.key.encode(), report.model_dump_json().encode(),
                   ((MESSAGE_TYPE_HEADER, MODEL_PROBLEM_TYPE.encode()),))


def _serving(state: str) -> Inbound:
    report = ServingReport(name="m", version="1", state=state, worker="w1")
    return Inbound(DISCOVERED, 0, 5, report.key.encode(), report.model_dump_json().encode(),
                   ((MESSAGE_TYPE_HEADER, SERVING_REPORT_TYPE.encode()),))


def _entry(out: Outgoing) -> CatalogEntry:
    return CatalogEntry.model_validate_json(out.value or b"")


async def test_a_found_version_is_read_once_and_published_under_its_key() -> None:
    read = FakeRead()
    (out,) = await _handler(read=read).handle_record(_discovered("found"))
    entry = _entry(out)
    assert (out.topic, out.key, out.headers) == (CATALOG, b"m/1", {"schema_version": "1"})
    assert (entry.status, [p.name for p in entry.inputs], entry.problems) == ("ready", ["a"], [])
    assert read.asked == ["m/1"]


async def test_a_report_right_after_the_entry_merges_into_it_before_the_view_has_it() -> None:
    handler = _handler()  # the view stays empty: it has not read the entry back yet
    await handler.handle_record(_discovered("found"))
    (out,) = await handler.handle_record(_serving("prepared"))
    entry = _entry(out)
    assert (entry.status, entry.serving and entry.serving.state) == ("ready", "prepared")
    assert await handler.handle_record(_serving("prepared")) == []  # a repeat changes nothing


async def test_after_a_removal_reports_of_the_version_publish_nothing() -> None:
    handler = _handler()
    await handler.handle_record(_discovered("found"))
    (tombstone,) = await handler.handle_record(_discovered("removed"))
    assert (tombstone.topic, tombstone.key, tombstone.value) == (CATALOG, b"m/1", None)
    assert await handler.handle_record(_problem("model_unavailable")) == []
    assert await handler.handle_record(_serving("prepared")) == []


async def test_a_rebuilt_entry_keeps_what_workers_reported() -> None:
    before = CatalogEntry(
        name="m", version="1", status="ready",
        problems=["worker: model_unavailable: no wheel"],
        serving=ServingState(state="failed", worker="w1", error_code="model_unavailable"),
    )
    (out,) = await _handler({"m/1": before}).handle_record(_discovered("updated"))
    entry = _entry(out)
    assert entry.problems == ["worker: model_unavailable: no wheel"]
    assert entry.serving == before.serving


async def test_facts_that_say_the_files_are_unreadable_make_an_invalid_entry() -> None:
    read = FakeRead(ModelFacts(problems=["model files unreadable: gone"]))
    (out,) = await _handler(read=read).handle_record(_discovered("found"))
    entry = _entry(out)
    assert (entry.status, entry.problems[0]) == ("invalid", "model files unreadable: gone")


async def test_a_message_of_a_newer_writer_is_skipped_without_a_read() -> None:
    read = FakeRead()
    record = Inbound(DISCOVERED, 0, 6, b"m/1", b"{}", ((MESSAGE_TYPE_HEADER, b"future"),))
    assert await _handler(read=read).handle_record(record) == []
    assert read.asked == []
