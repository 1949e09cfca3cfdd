"""A blocking facade over the asyncio client, for scripts and notebooks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import pyarrow as pa

from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogChange

from .async_client import AsyncModelbusClient

T = TypeVar("T")


class ModelbusClient:
    """Same calls as ``AsyncModelbusClient``, blocking; runs its own event-loop thread."""

    def __init__(
        self, bootstrap_servers: str | None = None, *, settings: ModelbusSettings | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="modelbus-client", daemon=True
        )
        self._thread.start()

        async def make() -> AsyncModelbusClient:
            client = AsyncModelbusClient(bootstrap_servers, settings=settings)
            await client.start()
            return client

        try:
            self._client = self._run(make())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, awaitable: Awaitable[T]) -> T:
        async def call() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    def predict(
        self, model: str, data: Any, version: str | int | None = None, timeout: float = 60.0
    ) -> pa.Table:
        return self._run(self._client.predict(model, data, version=version, timeout=timeout))

    def catalog(self, timeout: float = 30.0) -> list[CatalogEntry]:
        return self._run(self._client.catalog(timeout))

    def watch_catalog(self) -> Iterator[CatalogChange]:
        changes = self._client.watch_catalog()
        try:
            while True:
                yield self._run(changes.__anext__())
        except StopAsyncIteration:
            return
        finally:
            self._run(changes.aclose())

    def close(self) -> None:
        try:
            self._run(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> ModelbusClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
