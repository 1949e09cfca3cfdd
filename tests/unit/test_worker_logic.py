"""Worker logic without I/O: envelopes, resolution, schema conformance, replies, offsets."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from modelbus_client.tables import to_ipc_stream
from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_contract.errors import (
    BadRequest,
    ModelInvalid,
    ModelNotFound,
    SchemaMismatch,
    TooLarge,
)
from modelbus_contract.headers import HeaderView, read_headers
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.resolve import resolve
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.watermarks import OffsetTracker
from modelbus_worker.replies import error_result, label_outputs, ok_result, too_large_instead
from modelbus_worker.reply_policy import ReplyPolicy
from modelbus_worker.request import Envelope, RequestLimits, read_envelope, read_request
from modelbus_worker.schema_check import conform

RESULTS = "modelbus.inference.results"
POLICY = ReplyPolicy.from_settings(ModelbusSettings.model_construct())
LIMITS = RequestLimits(max_bytes=1 << 20, max_rows=1000, max_decoded_bytes=1 << 24,
                       max_timeout_s=60.0)


def _h(headers: dict[str, str]) -> HeaderView:
    return read_headers([(k, v.encode()) for k, v in headers.items()])


def _envelope(key: bytes | None, headers: dict[str, str]) -> Envelope:
    return read_envelope(key, _h(headers), POLICY)


def _entry(version: str, status: str = "ready", aliases: list[str] | None = None) -> CatalogEntry:
    return CatalogEntry(
        name="m", version=version, status=status, aliases=aliases or [],  # type: ignore[arg-type]
        inputs=[
            Parameter(index=0, name="Molecule", type="string", arrow_type="string"),
            Parameter(index=1, name="dose", type="double", arrow_type="double"),
        ],
        outputs=[Parameter(index=0, name="Predicted", type="double", semtype="Activity")],
        problems=[] if status == "ready" else ["broken tag"],
    )


CATALOG = {
    "m/1": _entry("1", aliases=["champion"]),
    "m/2": _entry("2"),
    "m/10": _entry("10", status="invalid"),
}


def test_envelope_falls_back_from_header_to_key_to_a_new_id() -> None:
    assert _envelope(b"k", {"correlation_id": "c"}).correlation_id == "c"
    assert _envelope(b"k", {}).correlation_id == "k"
    generated = _envelope(None, {}).correlation_id
    assert len(generated) == 32
    mine = "modelbus.replies.mine"
    assert _envelope(None, {"reply_to": mine}).reply_to == mine
    bad = _envelope(None, {"reply_to": "no spaces allowed"})
    assert bad.reply_to == RESULTS
    assert bad.problems == ("reply_to 'no spaces allowed' is not a valid topic name",)


@pytest.mark.parametrize(
    ("headers", "value", "needle"),
    [
        ({}, b"x", "missing header 'model'"),
        ({"model": "m"}, b"", "empty body"),
        ({"model": "m"}, b"not arrow at all", "not an Arrow IPC stream"),
        ({"model": "m", "content-type": "text/csv"}, b"x", "content-type"),
        ({"model": "m", "timeout_ms": "soon"}, b"x", "timeout_ms"),
    ],
)
def test_unreadable_requests_are_bad_requests(
    headers: dict[str, str], value: bytes, needle: str
) -> None:
    envelope = _envelope(None, headers)
    with pytest.raises(BadRequest, match=needle):
        read_request(envelope, _h(headers), value, LIMITS)


def test_oversized_request_is_too_large() -> None:
    body = to_ipc_stream(pa.table({"a": list(range(1000))}))
    limits = RequestLimits(max_bytes=100, max_rows=10, max_decoded_bytes=1 << 20,
                           max_timeout_s=1.0)
    with pytest.raises(TooLarge, match="request body is"):
        read_request(_envelope(None, {}), _h({"model": "m"}), body, limits)


def test_resolution_by_number_alias_and_newest_ready() -> None:
    assert resolve(CATALOG, "m", None).version == "2"  # 10 is invalid
    assert resolve(CATALOG, "m", "1").version == "1"
    assert resolve(CATALOG, "m", "@champion").version == "1"
    with pytest.raises(ModelNotFound, match="no model named 'x'"):
        resolve(CATALOG, "x", None)
    with pytest.raises(ModelNotFound, match="no version '7'"):
        resolve(CATALOG, "m", "7")
    with pytest.raises(ModelNotFound, match="no alias 'prod'"):
        resolve(CATALOG, "m", "@prod")
    with pytest.raises(ModelInvalid, match="broken tag"):
        resolve(CATALOG, "m", "10")


def test_conform_orders_casts_and_names_every_mismatch() -> None:
    table = pa.table({"dose": pa.array([1, 2], pa.int64()), "Molecule": ["C", "CC"]})
    out = conform(table, CATALOG["m/1"].inputs)
    assert out.column_names == ["Molecule", "dose"]
    assert out.schema.field("dose").type == pa.float64()
    with pytest.raises(SchemaMismatch) as info:
        conform(pa.table({"Molecule": [1], "smiles": ["C"]}), CATALOG["m/1"].inputs)
    text = str(info.value)
    assert "missing columns ['dose']" in text
    assert "unexpected columns ['smiles']" in text
    assert "'Molecule' is int64, expected string" in text


def test_large_strings_from_pandas_are_accepted_as_strings() -> None:
    table = pa.table({"Molecule": pa.array(["C"], pa.large_string()), "dose": [1.0]})
    assert conform(table, CATALOG["m/1"].inputs).schema.field("Molecule").type == pa.string()


def test_outputs_get_catalog_names_and_semtypes() -> None:
    labelled = label_outputs(pa.table({"0": [1.0]}), CATALOG["m/1"].outputs)
    assert labelled.column_names == ["Predicted"]
    assert labelled.schema.field("Predicted").metadata == {b"semtype": b"Activity"}


def test_replies_carry_the_contract_headers() -> None:
    envelope = _envelope(b"key", {"correlation_id": "c1"})
    ok = ok_result(envelope, "m", "2", table_to_ipc(pa.table({"Predicted": [0.5]})))
    assert ok.key == b"key"
    assert ok.headers["status"] == "ok"
    assert ok.headers["model_version"] == "2"
    assert ok.headers["correlation_id"] == "c1"
    err = error_result(envelope, SchemaMismatch("missing columns ['dose']"), "m", "2")
    assert err.headers["error_code"] == "schema_mismatch"
    assert json.loads(err.value or b"") == {
        "schema_version": "1",
        "error_code": "schema_mismatch",
        "error_message": "missing columns ['dose']",
    }


def test_offsets_commit_only_below_the_oldest_unanswered_request() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.started("p0", offset)
    tracker.finished("p0", 6)
    assert tracker.committable() == {"p0": 5}
    tracker.mark_committed({"p0": 5})
    assert tracker.committable() == {}
    tracker.finished("p0", 5)
    assert tracker.committable() == {"p0": 7}
    tracker.finished("p0", 7)
    assert tracker.committable() == {"p0": 8}
    assert tracker.in_flight() == 0


def test_unfinished_offsets_hold_the_commit_back_until_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.started("p0", 0)
    tracker.started("p0", 1)
    tracker.finished("p0", 1)  # 0 was abandoned (a stop cancelled it): never finished
    assert tracker.committable() == {"p0": 0}
    tracker.forget(["p0"])
    assert tracker.committable() == {}


def test_an_answer_over_the_limit_becomes_a_too_large_error_on_the_same_topic() -> None:
    envelope = _envelope(b"key", {"correlation_id": "c2"})
    big = ok_result(envelope, "m", "2", table_to_ipc(pa.table({"Predicted": [0.5] * 1000})))
    replaced = too_large_instead(big, 1024)
    assert (replaced.topic, replaced.key) == (big.topic, big.key)
    assert replaced.headers["correlation_id"] == "c2"
    assert replaced.headers["status"] == "error"
    assert replaced.headers["error_code"] == "too_large"
    assert replaced.headers["model_version"] == "2"
    assert json.loads(replaced.value or b"")["error_code"] == "too_large"
