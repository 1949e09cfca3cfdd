"""A newer writer never turns into poison for this reader: unknown fields, headers and
message types are read past (the evolution rules of docs/concepts/contract.md)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from modelbus.wiring import build_catalog
from modelbus_catalog.entry import ModelFacts
from modelbus_client.cli.results_batches import ERRORS_DIR, ResultRecord, build_tables
from modelbus_client.progress import Progress, wait_after_notice
from modelbus_client.tables import to_ipc_stream
from modelbus_contract.messages import (
    MESSAGE_TYPE_HEADER,
    CatalogEntry,
    DiscoveryEvent,
    ModelProblemReport,
    Parameter,
    ServingReport,
)
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.records import Inbound

SETTINGS = ModelbusSettings.model_construct()
NEWER = {"added_in_a_later_release": {"nested": [1, 2]}}


def _with_unknown_fields(document: dict[str, object]) -> bytes:
    return json.dumps({**document, **NEWER}).encode()


def test_a_catalog_entry_with_unknown_fields_at_every_level_is_read() -> None:
    entry = CatalogEntry(name="m", version="1", status="ready",
                         inputs=[Parameter(index=0, name="a", type="double")])
    document = json.loads(entry.model_dump_json())
    document["inputs"][0]["unit"] = "mol/l"  # a field of a newer Parameter
    document["serving"] = {"state": "warming_up", "worker": "w1", "gpu": "0"}
    read = CatalogEntry.model_validate_json(_with_unknown_fields(document))
    assert read.model_dump(exclude={"serving"}) == entry.model_dump(exclude={"serving"})
    assert read.serving is not None
    assert (read.serving.state, read.serving.worker, read.serving.prepared) == (
        "warming_up", "w1", False)


@pytest.mark.parametrize("message", [
    DiscoveryEvent(kind="found", name="m", version="1", fingerprint="f"),
    ModelProblemReport(name="m", version="1", error_code="model_unavailable"),
    ServingReport(name="m", version="1", state="prepared", worker="w1", seconds=2.5),
])
def test_every_registry_side_message_with_an_unknown_field_is_read(
    message: DiscoveryEvent | ModelProblemReport | ServingReport,
) -> None:
    document = json.loads(message.model_dump_json())
    assert type(message).model_validate_json(_with_unknown_fields(document)) == message


class OneSignature:
    def read(self, name: str, version: str) -> ModelFacts:
        return ModelFacts(signature={"inputs": '[{"type": "double", "name": "a"}]'},
                          flavors={"python_function": {}})


def _discovered(value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> Inbound:
    return Inbound(SETTINGS.topics.discovered, 0, 1, key, value, headers)


async def test_the_catalog_reads_a_discovery_event_with_unknown_fields_and_headers() -> None:
    event = DiscoveryEvent(kind="found", name="m", version="1", fingerprint="f",
                           model_tags={"datagrok": ""})
    record = _discovered(_with_unknown_fields(json.loads(event.model_dump_json())), b"m/1",
                         [("event", b"found"), ("x-newer-header", b"\xff anything")])
    (out,) = await build_catalog(SETTINGS, OneSignature()).handle_record(record)
    assert CatalogEntry.model_validate_json(out.value or b"").status == "ready"


async def test_the_catalog_skips_a_message_type_it_does_not_know() -> None:
    record = _discovered(b'{"not": "a discovery event"}', b"m/1#autoscaler",
                         [(MESSAGE_TYPE_HEADER, b"autoscaler_hint")])
    assert await build_catalog(SETTINGS, OneSignature()).handle_record(record) == []


async def test_the_catalog_puts_a_serving_report_in_the_entry_once() -> None:
    catalog = build_catalog(SETTINGS, OneSignature())
    event = DiscoveryEvent(kind="found", name="m", version="1", fingerprint="f",
                           model_tags={"datagrok": ""})
    await catalog.handle_record(_discovered(event.model_dump_json().encode(), b"m/1", []))
    report = ServingReport(name="m", version="1", state="prepared", worker="w1", seconds=3.0)
    header = [(MESSAGE_TYPE_HEADER, b"serving_report")]
    (out,) = await catalog.handle_record(
        _discovered(report.model_dump_json().encode(), report.key.encode(), header))
    serving = CatalogEntry.model_validate_json(out.value or b"").serving
    assert serving is not None
    assert (out.key, serving.state, serving.worker, serving.seconds) == (
        b"m/1", "prepared", "w1", 3.0)
    again = report.model_copy(update={"seconds": 9.0})  # nothing a reader sees changed
    assert await catalog.handle_record(
        _discovered(again.model_dump_json().encode(), report.key.encode(), header)) == []
    # An updated event (an alias moved) rebuilds the entry and keeps the serving state.
    updated = event.model_copy(update={"kind": "updated", "aliases": ["prod"],
                                       "fingerprint": "g"})
    (rebuilt,) = await catalog.handle_record(
        _discovered(updated.model_dump_json().encode(), b"m/1", []))
    entry = CatalogEntry.model_validate_json(rebuilt.value or b"")
    assert (entry.aliases, entry.serving and entry.serving.state) == (["prod"], "prepared")


def test_a_batch_pipeline_skips_progress_notices_and_reads_unknown_headers() -> None:
    ok = ResultRecord({"correlation_id": "a", "status": "ok", "model": "m",
                       "model_version": "1", "x-newer-header": "1"},
                      to_ipc_stream(pa.table({"y": [1.0]})), "results", 0, 2)
    notice = ResultRecord({"correlation_id": "a", "status": "preparing", "model": "m",
                           "model_version": "1", "step": "images"}, b"", "results", 0, 1)
    tables = build_tables([notice, ok]).tables
    assert set(tables) == {"m/v1"}
    assert ERRORS_DIR not in tables
    assert tables["m/v1"].column("y").to_pylist() == [1.0]


def test_progress_headers_of_a_newer_worker_are_read_leniently() -> None:
    progress = Progress.from_headers({"model": "m", "model_version": "3", "step": "images",
                                      "elapsed_ms": "12500", "notice_interval_ms": "nan",
                                      "eta_ms": "40000"})
    assert progress == Progress("m", "3", "images", 12.5, 0.0)
    assert progress.describe() == "m/3 is being prepared: images (12 s so far)"


def test_a_notice_extends_the_wait_by_the_callers_wait_or_two_notice_intervals() -> None:
    assert wait_after_notice(60.0, Progress("m", "1", "files", 0.0, 5.0)) == 60.0
    assert wait_after_notice(1.0, Progress("m", "1", "files", 0.0, 5.0)) == 10.0
