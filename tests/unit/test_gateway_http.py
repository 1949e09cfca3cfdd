"""The gateway's HTTP logic over fakes of its ports: the real codecs, guard and routes
answer through aiohttp's test server, the predictor and the catalog are fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pyarrow as pa
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.support.gateway_fakes import (
    FakeCatalog,
    FakePredictor,
    column_entry,
    preparing,
    tensor_entry,
)
from tests.support.waiting import async_wait_for

from modelbus_client.progress import Progress
from modelbus_contract.arrow_codec import ipc_to_table, table_to_ipc
from modelbus_contract.errors import ERRORS_BY_CODE, InferenceTimeout
from modelbus_gateway.core import Gateway
from modelbus_gateway.errors import HTTP_STATUS
from modelbus_gateway.http_guard import GatewayConfig
from modelbus_gateway.metrics import GatewayMetrics
from modelbus_gateway.mlflow_codec import BodyLimits
from modelbus_gateway.routes import build_app

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ROWS = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 0.5], [2, -1]]}}


async def serve(predictor: FakePredictor, catalog: FakeCatalog, max_record_bytes: int = 1 << 20,
                **config: Any) -> TestClient[Any, Any]:
    app = build_app(Gateway(predictor, catalog, max_record_bytes), GatewayConfig(**config),
                    GatewayMetrics())
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
def predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
async def http(predictor: FakePredictor) -> AsyncIterator[TestClient[Any, Any]]:
    client = await serve(predictor, FakeCatalog.of(column_entry(), tensor_entry()))
    yield client
    await client.close()


async def test_invocations_answer_predictions_with_the_version(
    http: TestClient[Any, Any], predictor: FakePredictor
) -> None:
    for path, version in (("/models/linear/invocations", None),
                          ("/models/linear/versions/1/invocations", "1"),
                          ("/models/linear/aliases/stable/invocations", "@stable")):
        response = await http.post(path, json=ROWS)
        assert response.status == 200
        assert await response.json() == {"predictions": [{"y": 2.5}, {"y": 3.0}]}
        assert response.headers["X-Modelbus-Correlation-Id"] == "cid-1"
        assert predictor.calls[-1]["version"] == version
    # Integers of a double input are sent as doubles: the catalog types the columns.
    assert predictor.calls[-1]["table"].schema.field("a").type == pa.float64()


async def test_arrow_in_arrow_out(http: TestClient[Any, Any]) -> None:
    body = table_to_ipc(pa.table({"a": [1.0], "b": [1.0]}))
    response = await http.post("/models/linear/invocations", data=body, headers={
        "Content-Type": "application/vnd.apache.arrow.stream",
        "Accept": "application/vnd.apache.arrow.stream"})
    assert response.status == 200
    assert ipc_to_table(await response.read()).to_pydict() == {"y": [3.0]}


@pytest.mark.parametrize("code", sorted(ERRORS_BY_CODE))
async def test_every_error_code_has_its_status_and_body(code: str) -> None:
    predictor = FakePredictor(error=ERRORS_BY_CODE[code](f"the {code} message"))
    http = await serve(predictor, FakeCatalog.of(column_entry()), retry_after_s=7)
    try:
        for path, message_key in (("/models/linear/invocations", "message"),
                                  ("/v2/models/linear/infer", "error")):
            body = ROWS if "invocations" in path else {"inputs": [
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
            response = await http.post(path, json=body)
            assert response.status == HTTP_STATUS[code]
            answer = await response.json()
            assert answer["error_code"] == code
            assert answer[message_key] == f"the {code} message"
            assert ("Retry-After" in response.headers) == (HTTP_STATUS[code] == 503)
    finally:
        await http.close()


async def test_unknown_model_is_404_after_one_catch_up() -> None:
    catalog = FakeCatalog.of(column_entry())
    http = await serve(FakePredictor(), catalog)
    try:
        response = await http.post("/models/nope/invocations", json=ROWS)
        assert response.status == 404
        assert (await response.json())["error_code"] == "model_not_found"
        assert catalog.syncs == 1
        response = await http.get("/v2/models/nope")
        assert response.status == 404
    finally:
        await http.close()


async def test_a_version_being_prepared_is_503_with_retry_after() -> None:
    predictor = FakePredictor()
    http = await serve(predictor, FakeCatalog.of(preparing(column_entry())), retry_after_s=9)
    try:
        response = await http.post("/models/linear/invocations", json=ROWS)
        assert response.status == 503
        assert response.headers["Retry-After"] == "9"
        assert (await response.json())["error_code"] == "model_unavailable"
        assert predictor.calls == []
        assert (await http.get("/v2/models/linear/ready")).status == 503
    finally:
        await http.close()


async def test_a_deadline_passed_while_preparing_is_503_not_504() -> None:
    predictor = FakePredictor(error=InferenceTimeout("late"),
                              notices=[Progress("linear", "1", "images", 3.0, 1.0)])
    http = await serve(predictor, FakeCatalog.of(column_entry()))
    try:
        response = await http.post("/models/linear/invocations", json=ROWS)
        assert response.status == 503
        assert "being prepared: images" in (await response.json())["message"]
    finally:
        await http.close()


async def test_bad_bodies_name_the_problem(http: TestClient[Any, Any]) -> None:
    cases = [
        (b"{not json", "application/json", 400, "bad_request"),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [["x", 1]]}}',
         "application/json", 400, "schema_mismatch"),
        (b'{"instances": [], "inputs": []}', "application/json", 400, "bad_request"),
        (b"a,b\n1,2\n", "application/xml", 415, "unsupported_media_type"),
        (b"not arrow", "application/vnd.apache.arrow.stream", 400, "bad_request"),
    ]
    for body, content_type, status, code in cases:
        response = await http.post("/models/linear/invocations", data=body,
                                   headers={"Content-Type": content_type})
        assert response.status == status, body
        answer = await response.json()
        assert answer["error_code"] == code
    response = await http.post("/models/linear/invocations", json={
        "dataframe_split": {"columns": ["a", "b"], "data": [["x", 1]]}})
    assert "'a'" in (await response.json())["message"]


async def test_a_huge_body_is_refused_before_it_is_read() -> None:
    http = await serve(FakePredictor(), FakeCatalog.of(column_entry()), max_body_bytes=1024)
    try:
        reader, writer = await asyncio.open_connection(http.host, http.port)
        writer.write(b"POST /models/linear/invocations HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
                     + b"[" * 4096)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 413")
        writer.close()
        # A body sent in chunks (no length announced) is cut off at the limit as well.
        response = await http.post("/models/linear/invocations",
                                   data=iter_chunks(b" " * 4096, 4))
        assert response.status == 413
        assert (await response.json())["error_code"] == "too_large"
        assert (await http.post("/models/linear/invocations", json=ROWS)).status == 200
    finally:
        await http.close()


async def iter_chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


async def test_deep_json_is_refused_before_parsing(http: TestClient[Any, Any]) -> None:
    deep = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await http.post("/models/linear/invocations", data=deep,
                               headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "nests 100001 levels" in (await response.json())["message"]


async def test_too_many_values_are_refused_before_parsing() -> None:
    http = await serve(FakePredictor(), FakeCatalog.of(column_entry()),
                       body=BodyLimits(max_json_elements=100))
    try:
        values = json.dumps({"inputs": {"a": [1.0] * 200, "b": [1.0] * 200}})
        response = await http.post("/models/linear/invocations", data=values,
                                   headers={"Content-Type": "application/json"})
        assert response.status == 413
    finally:
        await http.close()


async def test_a_flood_beyond_the_bound_is_429_at_once() -> None:
    hold = asyncio.Event()
    predictor = FakePredictor(hold=hold)
    http = await serve(predictor, FakeCatalog.of(column_entry()), max_in_flight=4)
    try:
        held = [asyncio.create_task(http.post("/models/linear/invocations", json=ROWS))
                for _ in range(4)]
        await async_wait_for(lambda: len(predictor.calls) == 4, 5, interval=0.01,
                             message="4 requests held in flight")
        refused = await asyncio.wait_for(
            asyncio.gather(*(http.post("/models/linear/invocations", json=ROWS)
                             for _ in range(20))), 5)
        assert [r.status for r in refused] == [429] * 20
        assert refused[0].headers["Retry-After"] == "1"
        assert (await http.get("/ping")).status == 200
        hold.set()
        assert [(await t).status for t in held] == [200] * 4
        assert (await http.post("/models/linear/invocations", json=ROWS)).status == 200
    finally:
        await http.close()


async def test_bearer_tokens(predictor: FakePredictor) -> None:
    http = await serve(predictor, FakeCatalog.of(column_entry()), tokens=frozenset({"s3cret"}))
    try:
        assert (await http.post("/models/linear/invocations", json=ROWS)).status == 401
        wrong = await http.post("/models/linear/invocations", json=ROWS,
                                headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        right = await http.post("/models/linear/invocations", json=ROWS,
                                headers={"Authorization": "Bearer s3cret"})
        assert right.status == 200
        assert (await http.get("/ping")).status == 200  # probes need no token
        assert (await http.get("/v2/health/ready")).status == 200
    finally:
        await http.close()


async def test_deadline_header_and_trace_context_reach_the_request(
    http: TestClient[Any, Any], predictor: FakePredictor
) -> None:
    response = await http.post("/models/linear/invocations", json=ROWS, headers={
        "X-Modelbus-Timeout": "2.5", "traceparent": TRACEPARENT, "tracestate": "k=v"})
    assert response.status == 200
    call = predictor.calls[-1]
    assert (call["timeout"], call["traceparent"], call["tracestate"]) == (2.5, TRACEPARENT, "k=v")
    # A malformed traceparent is dropped (a new trace begins), as W3C asks.
    await http.post("/models/linear/invocations", json=ROWS, headers={"traceparent": "junk"})
    assert predictor.calls[-1]["traceparent"] is None
    bad = await http.post("/models/linear/invocations", json=ROWS,
                          headers={"X-Modelbus-Timeout": "soon"})
    assert bad.status == 400
    capped = await http.post("/models/linear/invocations", json=ROWS,
                             headers={"X-Modelbus-Timeout": "1e9"})
    assert capped.status == 200
    assert predictor.calls[-1]["timeout"] == 600.0


async def test_oip_metadata_and_infer(http: TestClient[Any, Any]) -> None:
    assert (await http.get("/v2/health/live")).status == 200
    server = await (await http.get("/v2")).json()
    assert server["name"] == "modelbus"
    meta = await (await http.get("/v2/models/linear")).json()
    assert meta["versions"] == ["1"]
    assert meta["inputs"][0] == {"name": "a", "datatype": "FP64", "shape": [-1],
                                 "parameters": {"semtype": "Number", "mlflow_type": "double"}}
    tensor_meta = await (await http.get("/v2/models/tensor/versions/1")).json()
    assert tensor_meta["inputs"][0]["shape"] == [-1, 3]
    assert tensor_meta["inputs"][0]["datatype"] == "FP32"
    response = await http.post("/v2/models/linear/infer", json={"id": "r1", "inputs": [
        {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]},
        {"name": "b", "shape": [2, 1], "datatype": "FP64", "data": [0.5, -1.0]}]})
    assert response.status == 200
    assert await response.json() == {
        "model_name": "linear", "model_version": "1", "id": "r1",
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [2], "data": [2.5, 3.0]}]}


async def test_a_body_that_stalls_is_408_at_its_deadline(http: TestClient[Any, Any]) -> None:
    reader, writer = await asyncio.open_connection(http.host, http.port)
    writer.write(b"POST /models/linear/invocations HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                 b"X-Modelbus-Timeout: 0.2\r\n\r\n{\"inputs\"")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 408")


async def test_a_large_body_is_decoded_and_answered_off_the_loop(
    http: TestClient[Any, Any], predictor: FakePredictor
) -> None:
    rows = 20_000
    body = {"inputs": {"a": [float(i) for i in range(rows)], "b": [1.0] * rows}}
    response = await http.post("/models/linear/invocations", json=body)
    assert response.status == 200
    predictions = (await response.json())["predictions"]
    assert predictions == [{"y": 2.0 * i + 1.0} for i in range(rows)]


async def test_a_request_over_one_record_goes_in_chunks_to_the_resolved_version() -> None:
    predictor = FakePredictor()
    http = await serve(predictor, FakeCatalog.of(column_entry(version="3")),
                       max_record_bytes=2048)
    try:
        rows = 1000
        table = pa.table({"a": [float(i) for i in range(rows)], "b": [1.0] * rows})
        for body, content_type in (
            (json.dumps({"inputs": table.to_pydict()}).encode(), "application/json"),
            (table_to_ipc(table), "application/vnd.apache.arrow.stream"),
        ):
            response = await http.post("/models/linear/aliases/stable/invocations", data=body,
                                       headers={"Content-Type": content_type})
            assert response.status == 200
            assert response.headers["X-Modelbus-Model-Version"] == "3"
            predictions = (await response.json())["predictions"]
            assert predictions == [{"y": 2.0 * i + 1.0} for i in range(rows)]
        assert predictor.chunked == [{"model": "linear", "version": "3", "rows": rows}] * 2
        assert predictor.calls == []
    finally:
        await http.close()
