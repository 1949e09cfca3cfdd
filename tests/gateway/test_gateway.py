"""The gateway through the real stack, with clients modelbus did not write: MLflow's scoring
formats answered as ``mlflow models serve`` answers them, Triton's ``tritonclient``, the
error codes' HTTP statuses, the limits, and two gateway processes over two workers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import numpy as np
import pyarrow as pa
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.mlflow_serve import MlflowServe
from tests.support.waiting import async_wait_for

from modelbus.stack.ports import free_tcp_port
from modelbus.wiring import build_worker
from modelbus_contract.arrow_codec import ipc_to_table, table_to_ipc
from modelbus_worker.pool.pool import ContainerPool
from modelbus_worker.settings import ContainerSettings

from .conftest import LINEAR, MAX_IN_FLIGHT, TENSOR, TRICKY, WARM_UP_TIMEOUT_S, GatewayStack

pytestmark = pytest.mark.integration

ARROW = "application/vnd.apache.arrow.stream"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FORMATS: dict[str, tuple[str, bytes]] = {
    "dataframe_split": ("application/json", json.dumps({"dataframe_split": {
        "columns": ["a", "b"], "data": [[1.0, 0.5], [2.0, -1.0], [3.5, 0.0]]}}).encode()),
    "dataframe_records": ("application/json", json.dumps({"dataframe_records": [
        {"a": 1.0, "b": 0.5}, {"a": 2.0, "b": -1.0}]}).encode()),
    "instances": ("application/json", json.dumps({"instances": [
        {"a": 1.0, "b": 0.5}, {"a": -2.0, "b": 4.0}]}).encode()),
    "inputs": ("application/json", json.dumps({"inputs": {"a": [1.0, 7.0],
                                                          "b": [0.5, 0.25]}}).encode()),
    "inputs with params": ("application/json", json.dumps({
        "inputs": {"a": [1.0], "b": [0.5]}, "params": {"unused": 1}}).encode()),
    "text/csv": ("text/csv", b"a,b\n1.0,0.5\n2.0,-1.0\n"),
}


async def post(session: aiohttp.ClientSession, url: str, body: bytes, content_type: str,
               **headers: str) -> tuple[int, Any, dict[str, str]]:
    async with session.post(url, data=body, headers={"Content-Type": content_type,
                                                     **headers}) as response:
        raw = await response.read()
        data = json.loads(raw) if response.content_type == "application/json" else raw
        return response.status, data, dict(response.headers)


async def test_every_mlflow_format_answers_as_serve_does(
    gateway_stack: GatewayStack, linear_serve: MlflowServe
) -> None:
    version = gateway_stack.versions[LINEAR]
    paths = (f"/models/{LINEAR}", f"/models/{LINEAR}/versions/{version}",
             f"/models/{LINEAR}/aliases/stable")
    async with aiohttp.ClientSession() as session:
        for name, (content_type, body) in FORMATS.items():
            status, served, _ = await post(session, linear_serve.url + "/invocations", body,
                                           content_type)
            assert status == 200, (name, served)
            for path in paths:
                status, ours, headers = await post(
                    session, f"{gateway_stack.url}{path}/invocations", body, content_type)
                assert (status, ours) == (200, served), (name, path)
                assert headers["X-Modelbus-Model-Version"] == version
        # The caller's trace context rides on the Kafka request; the worker echoes it.
        status, _, headers = await post(
            session, f"{gateway_stack.url}/models/{LINEAR}/invocations",
            FORMATS["inputs"][1], "application/json", traceparent=TRACEPARENT)
        assert (status, headers["traceparent"]) == (200, TRACEPARENT)
        # Arrow in, Arrow out: the same predictions as serve's JSON.
        _, served, _ = await post(session, linear_serve.url + "/invocations",
                                  FORMATS["dataframe_split"][1], "application/json")
        table = pa.table({"a": [1.0, 2.0, 3.5], "b": [0.5, -1.0, 0.0]})
        status, ours, _ = await post(session, f"{gateway_stack.url}/models/{LINEAR}/invocations",
                                     table_to_ipc(table), ARROW, Accept=ARROW)
        assert status == 200
        assert ipc_to_table(ours).to_pylist() == served["predictions"]
        # 150,000 rows, over one Kafka record: sent in chunks, answered as serve answers.
        rows = [[float(i), 0.5] for i in range(150_000)]
        big = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}).encode()
        _, served, _ = await post(session, linear_serve.url + "/invocations", big,
                                  "application/json")
        status, ours, _ = await post(session, f"{gateway_stack.url}/models/{LINEAR}/invocations",
                                     big, "application/json")
        assert status == 200
        assert ours == served
        assert len(ours["predictions"]) == 150_000
        for url in (linear_serve.url, f"{gateway_stack.url}/models/{LINEAR}"):
            async with session.get(url + "/ping") as response:
                assert response.status == 200


def _triton_checks(url: str) -> None:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(LINEAR)
        meta = client.get_model_metadata(LINEAR)
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
            ("a", "FP64", [-1]), ("b", "FP64", [-1])]
        assert client.get_model_metadata(TENSOR)["inputs"][1]["shape"] == [-1, 2, 2]
        a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 0.0])
        inputs = [triton.InferInput("a", [3], "FP64"), triton.InferInput("b", [3], "FP64")]
        inputs[0].set_data_from_numpy(a)  # binary tensor data, as Triton's client sends it
        inputs[1].set_data_from_numpy(b, binary_data=False)
        result = client.infer(LINEAR, inputs)
        assert result.as_numpy("y").tolist() == (2 * a + b).tolist()
        ta = np.arange(6, dtype=np.float64).reshape(2, 3)
        tb = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
        tensors = [triton.InferInput("a", [2, 3], "FP64"),
                   triton.InferInput("b", [2, 2, 2], "FP32")]
        tensors[0].set_data_from_numpy(ta)
        tensors[1].set_data_from_numpy(tb)
        answer = client.infer(TENSOR, tensors, outputs=[
            triton.InferRequestedOutput("output", binary_data=False)])
        expected = np.einsum("ri,rj->rij", tb.sum(axis=2).astype(np.float64), ta)
        assert answer.as_numpy("output").tolist() == expected.tolist()
    finally:
        client.close()


async def test_tritonclient(gateway_stack: GatewayStack) -> None:
    # Triton's client blocks: it runs in a thread while the gateway answers on this loop.
    await asyncio.to_thread(_triton_checks, gateway_stack.url)


async def test_error_codes_through_the_stack(gateway_stack: GatewayStack) -> None:
    url = gateway_stack.url
    tricky = ("application/json", json.dumps({"dataframe_records": [{"Molecule": "boom"}]}))
    async with aiohttp.ClientSession() as session:
        status, body, _ = await post(session, f"{url}/models/nope/invocations", b"{}",
                                     "application/json")
        assert (status, body["error_code"]) == (404, "model_not_found")
        status, body, _ = await post(session, f"{url}/models/{LINEAR}/invocations",
                                     b'{"inputs": {"a": [1.0]}}', "application/json")
        assert (status, body["error_code"]) == (400, "schema_mismatch")
        assert "b" in body["message"]
        status, body, _ = await post(session, f"{url}/models/{TRICKY}/invocations",
                                     tricky[1].encode(), tricky[0])
        assert (status, body["error_code"]) == (500, "model_failed")
        slow = json.dumps({"dataframe_records": [{"Molecule": "sleep:3"}]}).encode()
        status, body, _ = await post(session, f"{url}/models/{TRICKY}/invocations", slow,
                                     "application/json", **{"X-Modelbus-Timeout": "0.5"})
        assert (status, body["error_code"]) == (504, "timeout")
        status, body, _ = await post(session, f"{url}/v2/models/nope/infer", b'{"inputs": []}',
                                     "application/json")
        assert (status, body["error_code"]) == (404, "model_not_found")


async def test_limits_answer_at_once_and_the_gateway_keeps_serving(
    gateway_stack: GatewayStack
) -> None:
    gateway = gateway_stack.gateway
    url = f"{gateway_stack.url}/models/{LINEAR}/invocations"
    ok = FORMATS["inputs"][1]
    # 100 MB announced: 413 before the body is read.
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    started = time.monotonic()
    writer.write(f"POST /models/{LINEAR}/invocations HTTP/1.1\r\nHost: gw\r\n"
                 "Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n".encode()
                 + b"[" * 65536)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 413")
    writer.close()
    async with aiohttp.ClientSession() as session:
        deep = b'{"inputs": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        status, body, _ = await post(session, url, deep, "application/json")
        assert (status, body["error_code"]) == (400, "bad_request")
        assert time.monotonic() - started < 5
        # A flood: MAX_IN_FLIGHT requests held by the model, then more, answered 429 at once.
        slow = json.dumps({"dataframe_records": [{"Molecule": "sleep:0.5"}]}).encode()
        tricky = f"{gateway_stack.url}/models/{TRICKY}/invocations"
        held = [asyncio.create_task(post(session, tricky, slow, "application/json"))
                for _ in range(MAX_IN_FLIGHT)]
        in_flight = "modelbus_gateway_in_flight"
        await async_wait_for(
            lambda: gateway.registry.get_sample_value(in_flight) == MAX_IN_FLIGHT, 5,
            interval=0.01, message="the gateway full")
        flood_started = time.monotonic()
        flood = await asyncio.gather(*(post(session, url, ok, "application/json")
                                       for _ in range(50)))
        assert [status for status, _, _ in flood] == [429] * 50
        assert time.monotonic() - flood_started < 2
        assert flood[0][1]["error_code"] == "overloaded"
        assert [status for status, _, _ in await asyncio.gather(*held)] == [200] * MAX_IN_FLIGHT
        status, body, _ = await post(session, url, ok, "application/json")
        assert (status, body) == (200, {"predictions": [{"y": 2.5}, {"y": 14.25}]})


def _post_sync(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                   st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3))
bodies = st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries({"inputs": st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(values, min_size=1, max_size=3),
        max_size=3)}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"dataframe_records": st.lists(st.dictionaries(
        st.sampled_from(["a", "b"]), values, max_size=2), max_size=3)}).map(
        lambda d: json.dumps(d).encode()),
)
headers = st.fixed_dictionaries({
    "Content-Type": st.sampled_from(["application/json", "text/csv", ARROW, "text/plain", ""]),
}, optional={"X-Modelbus-Timeout": st.sampled_from(["5", "0", "-1", "x", "1e9"]),
             # What an HTTP client can send: printable ASCII.
             "traceparent": st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                    max_size=60)})


def _attack(url: str) -> None:
    @settings(max_examples=80, deadline=None)
    @given(body=bodies, sent_headers=headers)
    def one(body: bytes, sent_headers: dict[str, str]) -> None:
        status, raw = _post_sync(url, body, sent_headers)
        if status == 200:
            assert "predictions" in json.loads(raw)
            return
        assert status in (400, 413, 415), (status, raw[:200])
        assert json.loads(raw)["error_code"] in ("bad_request", "schema_mismatch", "too_large",
                                                 "unsupported_media_type")

    one()


# The gateway's event loop (aiokafka's backoff jitter) uses ``random`` while hypothesis
# generates in the sending thread; hypothesis takes that for a strategy's use of it.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_any_body_and_headers_get_a_clear_answer_from_the_real_gateway(
    gateway_stack: GatewayStack
) -> None:
    url = f"{gateway_stack.url}/models/{LINEAR}/invocations"
    # Sent from a thread: the gateway answers on this test's event loop.
    await asyncio.to_thread(_attack, url)
    status, raw = await asyncio.to_thread(
        _post_sync, url, FORMATS["inputs"][1], {"Content-Type": "application/json"})
    assert (status, json.loads(raw)) == (200, {"predictions": [{"y": 2.5}, {"y": 14.25}]})


def _gateway_process(settings: Any, port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ,
           "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "MODELBUS_TOPIC_PREFIX": settings.topic_prefix,
           "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
           "MODELBUS_LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "modelbus", "--no-env-warnings", "gateway", "--port", str(port),
         "--metrics-port", str(metrics_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def _ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(f"{url}/v2/models/{LINEAR}/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_two_gateway_processes_two_workers_every_answer_reaches_its_caller(
    gateway_stack: GatewayStack, docker_client: Any
) -> None:
    second_pool = ContainerPool(ContainerSettings(max_containers=2), docker_client,
                                gateway_stack.settings.mlflow_tracking_uri)
    second_worker = build_worker(gateway_stack.settings, second_pool)
    ports = [free_tcp_port(), free_tcp_port()]
    ops_ports = [free_tcp_port(), free_tcp_port()]
    processes = [_gateway_process(gateway_stack.settings, port, ops)
                 for port, ops in zip(ports, ops_ports, strict=True)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    await second_worker.start()
    try:
        await asyncio.wait_for(second_pool.warm(LINEAR, gateway_stack.versions[LINEAR]),
                               WARM_UP_TIMEOUT_S)
        async with aiohttp.ClientSession() as session:
            for url in urls:
                await async_wait_for(lambda url=url: _ready(session, url), 60,
                                     message=f"gateway {url}")

            async def one(i: int) -> tuple[int, Any]:
                body = json.dumps({"inputs": {"a": [float(i)], "b": [0.5]}}).encode()
                status, answer, _ = await post(
                    session, f"{urls[i % 2]}/models/{LINEAR}/invocations", body,
                    "application/json")
                return status, answer

            answers = await asyncio.gather(*(one(i) for i in range(400)))
            # Each gateway's ops port counts its own 200 answers, and says it is ready.
            for ops in ops_ports:
                async with session.get(f"http://127.0.0.1:{ops}/metrics") as response:
                    metrics = await response.text()
                assert ('modelbus_gateway_requests_total{protocol="mlflow",status="200"} 200.0'
                        in metrics)
                async with session.get(f"http://127.0.0.1:{ops}/readyz") as response:
                    assert response.status == 200
        assert answers == [(200, {"predictions": [{"y": 2.0 * i + 0.5}]}) for i in range(400)]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        await second_worker.stop()  # closes its pool
