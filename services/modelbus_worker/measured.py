"""Measuring wrappers around the worker's handler and predictor (the per-request cost is a
counter and a few histogram observations)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pyarrow as pa

from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.lane_policy import CURRENT_LANE

from .answer import Answer, AnswerHandler, Received
from .metrics import PredictObserver, WorkerMetrics, model_labels
from .ports import Predictor


class MeasuredHandler:
    """Counts each answer by what it says (status, error code, model, version) and the lane
    it came from."""

    def __init__(
        self, handler: AnswerHandler, metrics: WorkerMetrics, entries: Mapping[str, CatalogEntry]
    ) -> None:
        self._handler = handler
        self._metrics = metrics
        self._entries = entries

    async def __call__(self, received: Received) -> Answer:
        started = time.perf_counter()
        stamp = received.record.timestamp
        queued_s = max(time.time() - stamp / 1000, 0.0) if stamp > 0 else None
        answer = await self._handler(received)
        model, version = model_labels(self._entries, answer.model, answer.version)
        self._metrics.answered(
            model, version, answer.status, answer.error_code,
            time.perf_counter() - started, queued_s, CURRENT_LANE.get(),
        )
        return answer


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
