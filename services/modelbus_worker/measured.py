"""Measuring wrappers around the worker's handler and predictor (the per-request cost is a
counter and a few histogram observations)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pyarrow as pa

from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.runtime import Handler

from .metrics import PredictObserver, WorkerMetrics, model_labels
from .ports import Predictor


class MeasuredHandler:
    """Counts each answer by the headers it carries (status, error code, model, version)."""

    def __init__(
        self, handler: Handler, metrics: WorkerMetrics, entries: Mapping[str, CatalogEntry]
    ) -> None:
        self._handler = handler
        self._metrics = metrics
        self._entries = entries

    async def __call__(self, record: Inbound) -> list[Outgoing]:
        started = time.perf_counter()
        queued_s = max(time.time() - record.timestamp / 1000, 0.0) if record.timestamp > 0 else None
        outputs = await self._handler(record)
        if outputs:
            headers = outputs[0].headers  # the answer; a DLQ copy may follow
            model, version = model_labels(
                self._entries, headers.get("model", ""), headers.get("model_version", "")
            )
            self._metrics.answered(
                model, version, headers.get("status", ""), headers.get("error_code", ""),
                time.perf_counter() - started, queued_s,
            )
        return outputs


class MeasuredPredictor:
    """A ``Predictor`` that reports each call's rows and duration (failed calls too)."""

    def __init__(self, predictor: Predictor, observe: PredictObserver) -> None:
        self._predictor = predictor
        self._observe = observe

    async def predict(
        self, name: str, version: str, table: pa.Table, timeout_s: float | None = None
    ) -> pa.Table:
        started = time.perf_counter()
        try:
            return await self._predictor.predict(name, version, table, timeout_s)
        finally:
            self._observe(name, version, table.num_rows, time.perf_counter() - started)

    async def close(self) -> None:
        await self._predictor.close()
