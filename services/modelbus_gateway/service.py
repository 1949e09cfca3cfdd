"""The gateway service: the shared modelbus client, the catalog view and the HTTP server,
started and stopped in one order. Built by ``modelbus.wiring.build_gateway``."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from prometheus_client import CollectorRegistry

from modelbus_client.async_client import AsyncModelbusClient
from modelbus_delivery.catalog_view import CatalogView
from modelbus_delivery.logs import get_logger
from modelbus_delivery.ops_http import Check, kafka_ready
from modelbus_delivery.topics import TopicGuard

from .metrics import GatewayMetrics

log = get_logger("gateway")

# A client that stops sending a body it announced is cut off after this long.
LINGERING_S = 2.0


class GatewayPortUnavailable(Exception):
    """The gateway's port cannot be bound (taken, or not allowed)."""


class GatewayService:
    """Serves ``app`` on ``host:port`` while ``client`` and ``view`` are running; ``guard``
    watches the requests topic and is the ``kafka`` readiness check.

    ``port`` 0 takes a free port; ``port`` then tells which.
    """

    def __init__(
        self, app: web.Application, client: AsyncModelbusClient, view: CatalogView,
        metrics: GatewayMetrics, host: str, port: int, guard: TopicGuard | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.view = view
        self.metrics = metrics
        self.host = host
        self.port = port
        self.guard = guard
        self._runner: web.AppRunner | None = None
        self._serving = False

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def readiness_checks(self) -> dict[str, Check]:
        return {"kafka": lambda: kafka_ready(self.guard, self._serving),
                "http": lambda: self._serving}

    async def refresh_metrics(self) -> None:
        return None

    async def start(self) -> None:
        """Catalog and client first (a request can then be resolved and sent), then HTTP."""
        await self.view.start()
        try:
            await self.client.start()
            if self.guard is not None:  # the requests topic, watched (and remade if lost)
                self.guard.start()
            self._runner = web.AppRunner(self.app, access_log=None,
                                         handler_cancellation=True,
                                         lingering_time=LINGERING_S)
            await self._runner.setup()
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise GatewayPortUnavailable(
                    f"the gateway cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from None
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock, backlog=1024).start()
        except BaseException:
            await self.stop()
            raise
        self._serving = True
        log.info("gateway_listening", url=self.url)

    async def stop(self) -> None:
        """HTTP first (no new requests), then the client and the view; never raises."""
        self._serving = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.guard is not None:
            await self.guard.stop()
        await self.client.close()
        await self.view.stop()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
