"""The worker's handler and quarantine as plain functions: records in, records out.

No broker and no Docker: a fake predictor stands in for the container pool (the handler's
port), and records are built the way the runtime hands them over.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from modelbus_client.tables import from_ipc_stream, to_ipc_stream
from modelbus_contract.errors import ModelFailed
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.writer import RecordTooLarge
from modelbus_worker.answer import AnswerHandler
from modelbus_worker.answering import Answering
from modelbus_worker.handler import RequestHandler
from modelbus_worker.quarantine import WorkerQuarantine
from modelbus_worker.reply_policy import ReplyPolicy
from modelbus_worker.request import RequestLimits

SETTINGS = ModelbusSettings.model_construct()
TOPICS = SETTINGS.topics
POLICY = ReplyPolicy.from_settings(SETTINGS)
LIMITS = RequestLimits(max_bytes=1 << 20, max_rows=100, max_decoded_bytes=1 << 20,
                       max_timeout_s=5.0)
ENTRY = CatalogEntry(
    name="lin", version="3", status="ready",
    inputs=[Parameter(index=0, name="a", type="double", arrow_type="double"),
            Parameter(index=1, name="b", type="double", arrow_type="double")],
    outputs=[Parameter(index=0, name="y", type="double", semtype="Score")],
)


class LinearPredictor:
    """y = 2a + b, or the failure it is told to raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, float | None]] = []

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        self.calls.append((name, version, table.num_rows, timeout_s))
        a, b = table.column("a").to_pylist(), table.column("b").to_pylist()
        if any(x < 0 for x in a):
            raise ModelFailed("ValueError: negative a")
        return pa.table({"0": [2 * x + y for x, y in zip(a, b, strict=True)]})

    async def close(self) -> None:
        return None


def _record(value: bytes | None, headers: dict[str, bytes], key: bytes | None = None) -> Inbound:
    return Inbound(TOPICS.requests, 0, 41, key, value, tuple(headers.items()))


def answering(handler: AnswerHandler) -> Answering:
    """``handler`` as the runtime calls it: a record in, the records that answer it out."""
    return Answering(handler, POLICY, TOPICS.dlq)


def _handler(predictor: LinearPredictor) -> Answering:
    return answering(RequestHandler({ENTRY.key: ENTRY}, predictor, LIMITS))


def _code(out: Outgoing) -> str:
    return str(json.loads(out.value or b"{}")["error_code"])


async def test_a_good_request_gets_one_ok_answer_with_catalog_names() -> None:
    predictor = LinearPredictor()
    body = to_ipc_stream(pa.table({"b": [1.0, 2.0], "a": pa.array([10, 20], pa.int32())}))
    out = await _handler(predictor)(
        _record(body, {"model": b"lin", "correlation_id": b"c1", "timeout_ms": b"999999"})
    )
    assert [(o.topic, o.headers["status"], o.headers["correlation_id"]) for o in out] == [
        (TOPICS.results, "ok", "c1")
    ]
    table = from_ipc_stream(out[0].value or b"")
    assert table.column("y").to_pylist() == [21.0, 42.0]
    assert table.schema.field("y").metadata == {b"semtype": b"Score"}
    assert predictor.calls == [("lin", "3", 2, 5.0)]  # the deadline is capped at 5 s


@pytest.mark.parametrize(
    ("headers", "key", "needle"),
    [
        ({"model": b"lin", "reply_to": TOPICS.catalog.encode()}, None, "internal modelbus topic"),
        ({"model": b"\xff"}, None, "header 'model' is not UTF-8"),
        ({"model": b"lin", "timeout_ms": b"nan"}, None, "positive finite"),
        ({"model": b"lin"}, b"\xfe" * 300, "record key is not UTF-8"),
        ({"model": b"lin", "correlation_id": b"x" * 257}, None, "257 bytes"),
    ],
)
async def test_unusable_headers_are_bad_request_with_a_dlq_copy(
    headers: dict[str, bytes], key: bytes | None, needle: str
) -> None:
    predictor = LinearPredictor()
    body = to_ipc_stream(pa.table({"a": [1.0], "b": [1.0]}))
    answer, copy = await _handler(predictor)(_record(body, headers, key))
    assert answer.topic == TOPICS.results and _code(answer) == "bad_request"
    assert needle in answer.headers["error_message"]
    assert (copy.topic, copy.value, copy.headers["dlq_offset"]) == (TOPICS.dlq, body, "41")
    assert predictor.calls == []


async def test_rows_beyond_the_bound_are_too_large_and_the_model_is_not_called() -> None:
    predictor = LinearPredictor()
    body = to_ipc_stream(pa.table({"a": [1.0] * 101, "b": [1.0] * 101}))
    (answer,) = await _handler(predictor)(_record(body, {"model": b"lin"}))
    assert _code(answer) == "too_large"
    assert answer.headers["error_message"] == "the request has 101 rows; the limit is 100"
    assert predictor.calls == []


async def test_the_model_failing_is_model_failed_without_a_dlq_copy() -> None:
    body = to_ipc_stream(pa.table({"a": [-1.0], "b": [1.0]}))
    (answer,) = await _handler(LinearPredictor())(_record(body, {"model": b"lin"}))
    assert (_code(answer), answer.headers["error_message"]) == (
        "model_failed", "ValueError: negative a"
    )


def test_the_quarantine_answers_the_requester_and_keeps_a_copy() -> None:
    quarantine = WorkerQuarantine(TOPICS, POLICY, 1 << 20)
    record = _record(b"body", {"model": b"lin", "correlation_id": b"c9"})
    answer, copy = quarantine.poisoned(record, "failed 3 times: RuntimeError: x")
    assert (answer.headers["correlation_id"], _code(answer)) == ("c9", "internal")
    assert copy.headers["dlq_error_message"].endswith("failed 3 times: RuntimeError: x")
    ok = Outgoing(TOPICS.results, b"k", b"x" * 10, {"status": "ok", "correlation_id": "c9"})
    too_large, dlq = quarantine.unpublishable(
        record, ok, RecordTooLarge("MessageSizeTooLargeError: big"))
    assert (too_large.topic, _code(too_large), dlq.topic) == (TOPICS.results, "too_large",
                                                              TOPICS.dlq)
    (note,) = quarantine.undecodable(TOPICS.requests, 0, 7, "UnicodeDecodeError: …")
    assert (note.topic, note.key, note.value, note.headers["dlq_offset"]) == (
        TOPICS.dlq, None, b"", "7"
    )


class CatalogThatCatchesUp:
    """Entries as a view holds them, and the catch-up that brings in what was published
    since (``published``), as ``CatalogView.sync`` does; ``reachable=False``: it fails."""

    def __init__(self, published: list[CatalogEntry], reachable: bool = True) -> None:
        self.entries: dict[str, CatalogEntry] = {}
        self.published = published
        self.reachable = reachable
        self.catch_ups = 0

    async def sync(self) -> bool:
        self.catch_ups += 1
        if not self.reachable:
            return False
        self.entries.update((e.key, e) for e in self.published)
        return True


def _request(model: bytes = b"lin", version: bytes | None = None) -> Inbound:
    headers = {"model": model, "correlation_id": b"c9"}
    if version is not None:
        headers["model_version"] = version
    return _record(to_ipc_stream(pa.table({"a": [1.0], "b": [2.0]})), headers)


def _caught_up_handler(catalog: CatalogThatCatchesUp) -> Answering:
    return answering(RequestHandler(catalog.entries, LinearPredictor(), LIMITS,
                                    catch_up=catalog.sync))


async def test_a_model_published_after_the_view_last_read_is_answered_after_one_catch_up() -> None:
    catalog = CatalogThatCatchesUp([ENTRY])
    out = await _caught_up_handler(catalog)(_request())
    assert [(o.topic, o.headers["status"]) for o in out] == [(TOPICS.results, "ok")]
    assert from_ipc_stream(out[0].value or b"").column("y").to_pylist() == [4.0]
    assert catalog.catch_ups == 1


async def test_a_version_that_became_ready_since_the_view_last_read_is_answered() -> None:
    catalog = CatalogThatCatchesUp([ENTRY])
    catalog.entries[ENTRY.key] = ENTRY.model_copy(update={"status": "invalid",
                                                          "problems": ["no signature"]})
    out = await _caught_up_handler(catalog)(_request(version=b"3"))
    assert [o.headers["status"] for o in out] == ["ok"]
    assert catalog.catch_ups == 1


async def test_a_known_model_costs_no_catch_up() -> None:
    catalog = CatalogThatCatchesUp([])
    catalog.entries[ENTRY.key] = ENTRY
    out = await _caught_up_handler(catalog)(_request())
    assert [o.headers["status"] for o in out] == ["ok"]
    assert catalog.catch_ups == 0


@pytest.mark.parametrize("reachable", [True, False])
async def test_a_model_still_unknown_after_the_catch_up_is_model_not_found(
    reachable: bool,
) -> None:
    catalog = CatalogThatCatchesUp([ENTRY], reachable=reachable)
    out = await _caught_up_handler(catalog)(_request(model=b"nope"))
    assert [(o.topic, _code(o)) for o in out] == [(TOPICS.results, "model_not_found")]
    assert catalog.catch_ups == 1
