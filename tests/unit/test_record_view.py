"""``modelbus tail``'s decoding and showing of records (pure): every kind of record of every
modelbus topic, and records that are broken in every way, shown and never raised on."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from modelbus_client.cli.record_view import (
    ArrowBody,
    JsonBody,
    Limits,
    NoBody,
    Poison,
    TextBody,
    Unreadable,
    json_line,
    matches,
    read_body,
    render_json,
    render_text,
    resolve_topic,
    role_of,
    table_lines,
    view,
)
from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.records import Inbound

SETTINGS = ModelbusSettings.model_construct()
TOPICS = SETTINGS.topics
LIMITS = Limits(max_rows=1000, max_decoded_bytes=1 << 20, preview_rows=2)
REQUEST = table_to_ipc(pa.table({"Molecule": ["CCO", "c1ccccc1O", "C"]}))


def record(topic: str, value: bytes | None, key: bytes | None = b"k",
           headers: tuple[tuple[str, bytes], ...] = (), offset: int = 7) -> Inbound:
    return Inbound(topic, 0, offset, key, value, headers, 1_700_000_000_123)


@pytest.mark.parametrize(("name", "topic"), [
    ("requests", TOPICS.requests), ("results", TOPICS.results), ("dlq", TOPICS.dlq),
    ("catalog", TOPICS.catalog), ("discovered", TOPICS.discovered),
    ("dlq-replays", TOPICS.dlq_replays), ("inference.requests", TOPICS.requests),
    ("replies.team-a", "modelbus.replies.team-a"), ("other.topic", "other.topic"),
])
def test_short_names_and_full_names(name: str, topic: str) -> None:
    assert resolve_topic(name, SETTINGS) == topic


def test_roles_of_topics() -> None:
    assert role_of(TOPICS.requests, SETTINGS) == "requests"
    assert role_of("modelbus.replies.0123", SETTINGS) == "results"  # reads like results
    assert role_of("elsewhere", SETTINGS) is None


def test_a_request_shows_its_headers_and_first_rows() -> None:
    shown = view(record(TOPICS.requests, REQUEST, b"demo", (
        ("model", b"demo"), ("correlation_id", b"c-1"))), "requests", LIMITS)
    assert isinstance(shown.body, ArrowBody)
    assert (shown.body.rows, shown.body.preview.num_rows, shown.problems) == (3, 2, ())
    text = render_text(shown)
    assert text.splitlines()[0] == (
        f"{TOPICS.requests}/0@7  2023-11-14T22:13:20.123Z  key='demo'")
    assert "  model: demo" in text and "  correlation_id: c-1" in text
    assert "value: Arrow" in text and "3 rows: Molecule: string" in text
    assert "    Molecule" in text and "    c1ccccc1O" in text and "… 1 more row" in text
    assert "    C\n" not in text + "\n"  # beyond the preview


def test_results_ok_error_and_notices() -> None:
    field = pa.field("Predicted", pa.string(), metadata={"semtype": "Molecule"})
    ok = table_to_ipc(pa.table([pa.array(["3"])], schema=pa.schema([field])))
    shown = view(record(TOPICS.results, ok, headers=(("status", b"ok"),)), "results", LIMITS)
    assert "Predicted: string [Molecule]" in render_text(shown)
    error = json.dumps({"error_code": "model_not_found", "error_message": "no m"}).encode()
    shown = view(record(TOPICS.results, error, headers=(("status", b"error"),)), "results",
                 LIMITS)
    assert isinstance(shown.body, JsonBody) and shown.body.value["error_code"] == "model_not_found"
    notice = view(record(TOPICS.results, b"", headers=(("status", b"preparing"),)), "results",
                  LIMITS)
    assert notice.body == NoBody("empty") and "value: empty" in render_text(notice)


def test_catalog_entries_tombstones_and_entries_that_are_not() -> None:
    entry = CatalogEntry(name="m", version="1", status="ready")
    shown = view(record(TOPICS.catalog, entry.model_dump_json().encode(), b"m/1"), "catalog",
                 LIMITS)
    assert isinstance(shown.body, JsonBody) and shown.problems == ()
    assert '"name": "m"' in render_text(shown)
    gone = view(record(TOPICS.catalog, None, b"m/1"), "catalog", LIMITS)
    assert "value: none (tombstone)" in render_text(gone)
    wrong = view(record(TOPICS.catalog, b'{"name": "m"}', b"m/1"), "catalog", LIMITS)
    assert wrong.problems[0].startswith("not a valid CatalogEntry: version: Field required")
    assert "  ! not a valid CatalogEntry" in render_text(wrong)
    arrow = view(record(TOPICS.catalog, REQUEST, b"m/1"), "catalog", LIMITS)
    assert arrow.problems == ("the catalog topic holds JSON messages, not this",)
    # a message type this reader does not know is no problem (tolerant reader)
    other = view(record(TOPICS.discovered, b'{"x": 1}', b"m/1#new",
                        (("message_type", b"brand_new"),)), "discovered", LIMITS)
    assert other.problems == ()


def test_poison_of_every_kind_is_shown_with_why() -> None:
    bad_arrow = view(record(TOPICS.requests, b"\xff\xff\xff\xff" + b"\x00" * 20), "requests",
                     LIMITS)
    assert isinstance(bad_arrow.body, Unreadable)
    assert "not a readable Arrow IPC stream" in bad_arrow.body.reason
    garbage = view(record(TOPICS.requests, b"\x00\x81\xfe garbage"), "requests", LIMITS)
    assert isinstance(garbage.body, Unreadable)
    text = render_text(garbage)
    assert "UNREADABLE (11 bytes): neither an Arrow IPC stream nor UTF-8 text" in text
    assert "00 81 fe 20 67" in text
    too_big = view(record(TOPICS.requests, REQUEST), "requests",
                   Limits(max_rows=1, max_decoded_bytes=1 << 20))
    assert isinstance(too_big.body, Unreadable) and "exceeds the limit" in too_big.body.reason
    headers = view(record(TOPICS.requests, REQUEST, b"\xff\xfe", (
        ("model", b"\xffm"), ("x", b"1"), ("x", b"2"))), "requests", LIMITS)
    assert any("'model' is not UTF-8" in p for p in headers.problems)
    assert any("'x' appears more than once" in p for p in headers.problems)
    assert "key=0xfffe" in render_text(headers)
    undecodable = Poison(TOPICS.dlq, 0, 3, "the Kafka client cannot decode this record: X")
    assert render_text(undecodable) == (
        f"{TOPICS.dlq}/0@3  UNDECODABLE: the Kafka client cannot decode this record: X")
    assert json.loads(json_line(undecodable))["undecodable"].endswith("X")


def test_bodies_of_no_known_kind() -> None:
    assert read_body(b"plain words", LIMITS) == TextBody("plain words", 11)
    assert isinstance(read_body(REQUEST, LIMITS), ArrowBody)  # sniffed on any topic
    # a requests topic body that is JSON is still shown as JSON
    assert isinstance(read_body(b"{}", LIMITS, expect_arrow=True), JsonBody)


def test_choosing_by_correlation_id_and_model() -> None:
    request = view(record(TOPICS.requests, REQUEST, b"demo", (
        ("model", b"demo"), ("correlation_id", b"c-1"))), "requests", LIMITS)
    assert matches(request, "c-1", "demo") and not matches(request, "c-2")
    assert not matches(request, model="other")
    keyed = view(record(TOPICS.results, b"", b"c-9"), "results", LIMITS)
    assert matches(keyed, "c-9")
    entry = view(record(TOPICS.catalog, b'{"name": "demo"}', b"demo/3"), "catalog", LIMITS)
    assert matches(entry, model="demo") and not matches(entry, model="dem")
    assert matches(Poison("t", 0, 1, "?"), "c-1", "demo")  # nothing known: shown


def test_json_output_is_one_object_per_record() -> None:
    shown = view(record(TOPICS.requests, REQUEST, b"\xff", (("model", b"demo"),)), "requests",
                 LIMITS)
    doc = json.loads(json_line(shown))
    assert doc["key"] == {"hex": "ff"} and doc["headers"] == {"model": "demo"}
    assert doc["value"]["rows"] == 3 and doc["value"]["preview"] == [
        {"Molecule": "CCO"}, {"Molecule": "c1ccccc1O"}]
    unreadable = render_json(view(record(TOPICS.requests, b"\x00\x01"), "requests", LIMITS))
    assert unreadable["value"] == {"kind": "unreadable", "bytes": 2, "head_hex": "0001",
                                   "reason": "neither an Arrow IPC stream nor UTF-8 text"}


def test_tables_are_aligned_and_cells_cut_short() -> None:
    lines = table_lines(pa.table({"a": [1, None], "long": ["x" * 100, "y\nz"]}))
    assert lines[0].split() == ["a", "long"]
    assert lines[1].startswith("1     " + "x" * 39 + "…")
    assert lines[2].split() == ["null", "y", "z"]
