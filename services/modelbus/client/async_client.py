"""The asyncio client: ``predict``, ``catalog`` and ``watch_catalog`` over plain aiokafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

import pyarrow as pa

from modelbus_contract.arrow_codec import ARROW_STREAM
from modelbus_contract.errors import InferenceTimeout, error_from_code
from modelbus_contract.messages import CatalogEntry, version_order
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.catalog_view import CatalogChange, CatalogView
from modelbus_delivery.writer import TopicWriter

from .results_listener import ResultsListener
from .tables import as_table, from_ipc_stream, to_ipc_stream


class AsyncModelbusClient:
    """Sends prediction requests and awaits their results, matched by correlation id.

    ``AsyncModelbusClient(bootstrap_servers="host:9092")`` uses the default topics; pass
    ``settings`` (or set ``MODELBUS_*`` variables) for another prefix.
    """

    def __init__(
        self, bootstrap_servers: str | None = None, *, settings: ModelbusSettings | None = None
    ) -> None:
        settings = settings or ModelbusSettings()
        if bootstrap_servers:
            settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap_servers})
        self.settings = settings
        servers = settings.kafka_bootstrap_servers
        self._topics = settings.topics
        self._writer = TopicWriter(servers, max_request_size=settings.max_message_bytes)
        self._results = ResultsListener(
            servers, self._topics.results, settings.kafka_fetch_max_wait_ms
        )

    async def start(self) -> None:
        await self._results.start()
        try:
            await self._writer.start()
        except BaseException:
            await self._results.stop()
            raise

    async def close(self) -> None:
        await self._writer.stop()
        await self._results.stop()

    async def __aenter__(self) -> AsyncModelbusClient:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def predict(
        self,
        model: str,
        data: Any,
        version: str | int | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the request's deadline, sent to the worker
        correlation_id: str | None = None,
    ) -> pa.Table:
        """Run ``data`` (Table, DataFrame or dict of columns) through ``model``.

        ``version`` is a number, ``"@alias"`` or None for the newest READY version.
        Raises a ``ModelbusError`` subclass carrying the worker's ``error_code``.
        """
        table = as_table(data)
        cid = correlation_id or uuid.uuid4().hex
        headers = {
            "model": model,
            "correlation_id": cid,
            "content-type": ARROW_STREAM,
            "timeout_ms": str(int(timeout * 1000)),
        }
        if version is not None:
            headers["model_version"] = str(version)
        future = self._results.expect(cid)
        try:
            await self._writer.send(self._topics.requests, cid, to_ipc_stream(table), headers)
            result_headers, value = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise InferenceTimeout(f"no result for {model} within {timeout}s") from None
        finally:
            self._results.forget(cid)
        if result_headers.get("status") == "ok":
            return from_ipc_stream(value or b"")
        code = result_headers.get("error_code", "internal")
        message = result_headers.get("error_message", "")
        if value:
            with contextlib.suppress(ValueError, AttributeError):  # body is optional detail
                message = json.loads(value).get("error_message", message)
        raise error_from_code(code, message)

    async def catalog(self, timeout: float = 30.0) -> list[CatalogEntry]:  # noqa: ASYNC109
        """Every current catalog entry, sorted by name and version."""
        view = CatalogView(self.settings.kafka_bootstrap_servers, self._topics.catalog)
        await view.start(catch_up_timeout_s=timeout)
        try:
            return sorted(view.entries.values(), key=lambda e: (e.name, version_order(e.version)))
        finally:
            await view.stop()

    async def watch_catalog(self) -> AsyncGenerator[CatalogChange, None]:
        """The current entries, then every change (``entry`` None means removed)."""
        view = CatalogView(self.settings.kafka_bootstrap_servers, self._topics.catalog)
        await view.start()
        changes = view.changes()
        try:
            for key, entry in sorted(view.entries.items()):
                yield CatalogChange(key, entry)
            async for change in changes:
                yield change
        finally:
            await view.stop()

