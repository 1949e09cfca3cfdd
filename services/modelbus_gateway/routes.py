"""The gateway's HTTP endpoints: MLflow's scoring protocol per model and the Open Inference
Protocol V2; each reads its request with a codec and calls the transport-free core."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from modelbus_client.prediction import Prediction
from modelbus_contract.messages import PREPARING, CatalogEntry
from modelbus_contract.trace_context import valid_traceparent, valid_tracestate

from . import mlflow_codec, oip_codec
from .core import Gateway, Inference
from .errors import GatewayRefusal
from .http_guard import TIMEOUT_HEADER, GatewayConfig, Guard, deadline_s
from .metrics import GatewayMetrics

SERVER_NAME = "modelbus"
# Bodies and answers from this size on are decoded and encoded in a worker thread.
OFF_LOOP_BYTES = 256 * 1024
T = TypeVar("T")
MODEL_BASES = ("/models/{name}", "/models/{name}/versions/{version}",
               "/models/{name}/aliases/{alias}")
OIP_BASES = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")


async def off_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` here when ``size`` is small, else in a thread: decoding or encoding a
    large body must not stall the other requests of this event loop."""
    if size < OFF_LOOP_BYTES:
        return work(*args)
    return await asyncio.to_thread(work, *args)


def version_spec(request: web.Request) -> str | None:
    """The version a path names: a number, ``@alias`` (from ``/aliases/ALIAS``), or None."""
    info = request.match_info
    if "alias" in info:
        return "@" + info["alias"]
    return info.get("version")


def trace_of(request: web.Request) -> tuple[str | None, str | None]:
    """The caller's W3C trace context; a malformed one is dropped (a new trace begins)."""
    parent = request.headers.get("traceparent")
    if parent is None or not valid_traceparent(parent):
        return None, None
    state = request.headers.get("tracestate")
    return parent, state if state is not None and valid_tracestate(state) else None


def _package_version() -> str:
    try:
        return importlib.metadata.version("modelbus")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def _answered_headers(answer: Prediction) -> dict[str, str]:
    """Who answered, and the trace context the worker's answer carries (the caller's,
    echoed: proof that it travelled on the Kafka request)."""
    headers = {"X-Modelbus-Model-Version": answer.model_version,
               "X-Modelbus-Correlation-Id": answer.correlation_id}
    for name in ("traceparent", "tracestate"):
        if value := answer.headers.get(name):
            headers[name] = value
    return headers


class Routes:
    """Handlers over one ``Gateway`` core."""

    def __init__(self, gateway: Gateway, config: GatewayConfig) -> None:
        self.gateway = gateway
        self.config = config

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="\n", content_type="application/json")

    async def model_ping(self, request: web.Request) -> web.Response:
        await self.gateway.entry(request.match_info["name"], version_spec(request))
        return web.Response(text="\n", content_type="application/json")

    async def _body(self, request: web.Request, timeout_s: float) -> bytes:
        """The whole body, which must arrive within the request's deadline (a client that
        stalls holds its place in flight no longer)."""
        try:
            async with asyncio.timeout(timeout_s):
                return await request.read()
        except TimeoutError:
            raise GatewayRefusal("request_timeout", f"the body did not arrive within "
                                 f"{timeout_s:g} s") from None

    async def _inference(self, request: web.Request, entry: CatalogEntry, timeout_s: float,
                         table: Any = None, ipc: bytes | None = None) -> Prediction:
        parent, state = trace_of(request)
        return await self.gateway.infer(Inference(
            request.match_info["name"], version_spec(request), table=table, ipc=ipc,
            timeout_s=timeout_s, traceparent=parent, tracestate=state, entry=entry,
        ))

    async def invocations(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], version_spec(request)
        timeout_s = deadline_s(request.headers.get(TIMEOUT_HEADER), self.config)
        entry = await self.gateway.entry(name, version)  # an unknown model first: 404
        body = await self._body(request, timeout_s)
        scoring = await off_loop(len(body), mlflow_codec.decode,
                                 request.headers.get("Content-Type"), body, entry,
                                 self.config.body)
        answer = await self._inference(request, entry, timeout_s, scoring.table, scoring.ipc)
        data, content_type = await off_loop(
            answer.table.nbytes, mlflow_codec.encode_predictions, answer.table, entry,
            request.headers.get("Accept"))
        return web.Response(body=data, content_type=content_type,
                            headers=_answered_headers(answer))

    async def server_ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": SERVER_NAME, "version": _package_version(),
                      "extensions": ["binary_tensor_data"]})

    async def model_metadata(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        entry = await self.gateway.entry(name, version_spec(request))
        return _json(oip_codec.model_metadata(entry, self.gateway.versions(name)))

    async def model_ready(self, request: web.Request) -> web.Response:
        entry = await self.gateway.entry(request.match_info["name"], version_spec(request))
        ready = entry.serving is None or entry.serving.state != PREPARING
        return web.Response(status=200 if ready else 503)

    async def infer(self, request: web.Request) -> web.Response:
        name, version = request.match_info["name"], version_spec(request)
        timeout_s = deadline_s(request.headers.get(TIMEOUT_HEADER), self.config)
        entry = await self.gateway.entry(name, version)
        body = await self._body(request, timeout_s)
        decoded = await off_loop(len(body), oip_codec.decode_infer, body,
                                 request.headers.get(oip_codec.BINARY_HEADER), entry,
                                 self.config.body)
        answer = await self._inference(request, entry, timeout_s, decoded.table)
        data, headers = await off_loop(answer.table.nbytes, oip_codec.encode_infer,
                                       answer.table, decoded, answer.model,
                                       answer.model_version)
        return web.Response(body=data, headers={**headers, **_answered_headers(answer)})


def build_app(gateway: Gateway, config: GatewayConfig, metrics: GatewayMetrics
              ) -> web.Application:
    """The aiohttp application: every endpoint behind the ``Guard``."""
    app = web.Application(middlewares=[Guard(config, metrics).middleware],
                          client_max_size=config.max_body_bytes)
    routes = Routes(gateway, config)
    app.router.add_get("/ping", routes.ping)
    app.router.add_get("/health", routes.ping)
    for base in MODEL_BASES:
        app.router.add_post(base + "/invocations", routes.invocations)
        app.router.add_get(base + "/ping", routes.model_ping)
        app.router.add_get(base + "/health", routes.model_ping)
    app.router.add_get("/v2/health/live", routes.server_ready)
    app.router.add_get("/v2/health/ready", routes.server_ready)
    app.router.add_get("/v2", routes.server_metadata)
    for base in OIP_BASES:
        app.router.add_get(base, routes.model_metadata)
        app.router.add_get(base + "/ready", routes.model_ready)
        app.router.add_post(base + "/infer", routes.infer)
    return app
