"""Gateway CPU bench: what the HTTP gateway itself costs per one-row request, without Kafka.

The gateway's aiohttp app is built as ``modelbus gateway`` builds it (``routes.build_app``
around ``core.Gateway``: guard, codecs, columns, metrics), on a real local TCP server, with
an in-process predictor in place of the modelbus client: it reads the Arrow body the gateway
made and answers ``y = 2a + b`` (what the worker answers, without Kafka and the worker). One
aiohttp client session sends one-row ``dataframe_split`` JSON requests, one at a time, and
checks every answer. As a same-run floor, the same client against a bare aiohttp handler that
reads the body and answers a fixed JSON body on the same kind of server: what any aiohttp
service costs per request. It prints wall time and process CPU per request (client and server
share the process, so the floor holds the client's cost too) and the gateway minus the floor.

    .venv/bin/python bench/gateway_cpu_bench.py [--requests 3000] [--rounds 5]

Older code: ``PYTHONPATH=<worktree>/services .venv/bin/python bench/gateway_cpu_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelbus_client.prediction import Prediction
from modelbus_contract.arrow_codec import ipc_to_table
from modelbus_contract.catalog_index import CatalogEntries
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_delivery.logs import configure_logging
from modelbus_gateway.core import Gateway
from modelbus_gateway.http_guard import GatewayConfig
from modelbus_gateway.metrics import GatewayMetrics
from modelbus_gateway.routes import build_app

ENTRY = CatalogEntry(
    name="linear", version="1", status="ready", aliases=["stable"],
    inputs=[Parameter(index=0, name="a", type="double", arrow_type="double"),
            Parameter(index=1, name="b", type="double", arrow_type="double")],
    outputs=[Parameter(index=0, name="y", type="double", arrow_type="double")],
)
PATH = "/models/linear/invocations"


class LinearPredictor:
    """What the modelbus client answers, without Kafka: ``y = 2a + b`` of the sent body."""

    async def predict_ipc(self, model: str, body: bytes, version: Any = None,
                          timeout: float = 60.0, **_: Any) -> Prediction:  # noqa: ASYNC109
        table = ipc_to_table(body)
        y = pc.add(pc.multiply(table.column("a"), 2.0), table.column("b"))
        return Prediction(pa.table({"y": y}), model, "1", "cid")

    async def predict_table(self, model: str, data: Any, version: Any = None,
                            timeout: float = 60.0, window: int = 8) -> pa.Table:  # noqa: ASYNC109
        raise NotImplementedError  # one-row requests never go in chunks


class FixedCatalog:
    """The catalog holding the linear model only."""

    entries = CatalogEntries({ENTRY.key: ENTRY})

    async def sync(self, timeout_s: float | None = None) -> bool:
        return True


def gateway_app() -> web.Application:
    return build_app(Gateway(LinearPredictor(), FixedCatalog()), GatewayConfig(),
                     GatewayMetrics())


def floor_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"predictions": [{"y": 3.0}]}',
                            content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, echo)
    return app


def body(i: int) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["a", "b"],
                                           "data": [[float(i), 1.0]]}}).encode()


async def measure(session: aiohttp.ClientSession, url: str, requests: int,
                  check: Callable[[int, Any], None]) -> tuple[float, float]:
    """Median wall µs and mean CPU µs per request, ``requests`` sent one at a time."""
    bodies = [body(i) for i in range(requests)]
    walls, answers = [], []
    cpu0 = time.process_time()
    for b in bodies:
        t0 = time.perf_counter()
        async with session.post(url, data=b, headers={
                "Content-Type": "application/json"}) as response:
            answers.append((response.status, await response.read()))
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / requests
    for i, answer in enumerate(answers):  # checked outside the time
        check(i, answer)
    return statistics.median(walls) * 1e6, cpu * 1e6


def check_gateway(i: int, answer: Any) -> None:
    status, raw = answer
    if status != 200 or json.loads(raw) != {"predictions": [{"y": 2.0 * i + 1.0}]}:
        raise RuntimeError(f"request {i}: {status} {raw[:200]!r}")


def check_floor(i: int, answer: Any) -> None:
    if answer[0] != 200:
        raise RuntimeError(f"floor request {i}: {answer[0]}")


async def served(make: Callable[[], web.Application],
                 run: Callable[[str], Awaitable[Any]]) -> Any:
    server = TestServer(make())
    await server.start_server()
    try:
        return await run(str(server.make_url(PATH)))
    finally:
        await server.close()


async def run(requests: int, rounds: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {"gateway": [], "floor": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(rounds + 1):  # the first round warms up and is left out
            for name, make, check in (("gateway", gateway_app, check_gateway),
                                      ("floor", floor_app, check_floor)):
                results[name].append(await served(
                    make, lambda url, c=check: measure(session, url, requests, c)))
    g, f = results["gateway"][1:], results["floor"][1:]
    gw, gc = statistics.median(x[0] for x in g), statistics.median(x[1] for x in g)
    fw, fc = statistics.median(x[0] for x in f), statistics.median(x[1] for x in f)
    print(f"gateway: p50 {gw:.0f} µs wall, {gc:.0f} µs CPU per one-row request "
          f"(rounds, CPU: {', '.join(f'{x[1]:.0f}' for x in g)})")
    print(f"floor (bare aiohttp handler, same client): p50 {fw:.0f} µs wall, {fc:.0f} µs CPU")
    print(f"gateway - floor: {gw - fw:.0f} µs wall, {gc - fc:.0f} µs CPU; "
          f"gateway ÷ floor CPU {gc / fc:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("ERROR")
    warnings.filterwarnings("ignore")
    asyncio.run(run(args.requests, args.rounds))


if __name__ == "__main__":
    main()
