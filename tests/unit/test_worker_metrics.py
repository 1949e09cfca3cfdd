"""The worker's request metrics without a broker: a fake predictor behind the real handler."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry
from tests.unit.test_worker_handler import ENTRY, LIMITS, LinearPredictor, _record, answering

from modelbus_client.tables import to_ipc_stream
from modelbus_contract.catalog_index import CatalogEntries
from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.lane_policy import CURRENT_LANE
from modelbus_worker.handler import RequestHandler
from modelbus_worker.measured import MeasuredHandler, MeasuredPredictor
from modelbus_worker.metrics import UNKNOWN, WorkerMetrics, model_labels

CATALOG = {ENTRY.key: ENTRY}
BODY = to_ipc_stream(pa.table({"a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 0.0]}))


LANE = {"lane": "interactive"}  # requests the runtime did not read from the bulk lane


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [
        s.labels for family in registry.collect() for s in family.samples if s.name == name
    ]


@pytest.mark.parametrize("catalog", [CATALOG, CatalogEntries(CATALOG)], ids=["dict", "index"])
def test_labels_are_bounded_by_the_catalog(catalog: Mapping[str, CatalogEntry]) -> None:
    assert model_labels(catalog, "lin", "3") == ("lin", "3")
    assert model_labels(catalog, "lin", "") == ("lin", "")  # not resolved (a bad request)
    assert model_labels(catalog, "lin", "99") == ("lin", UNKNOWN)
    assert model_labels(catalog, "attacker-1", "") == (UNKNOWN, "")
    assert model_labels(catalog, "attacker-2", "7") == (UNKNOWN, UNKNOWN)


async def test_answers_are_counted_by_model_status_and_error_code() -> None:
    metrics = WorkerMetrics()
    predictor = LinearPredictor()
    handler = answering(
        MeasuredHandler(RequestHandler(CATALOG, predictor, LIMITS), metrics, CATALOG)
    )
    now_ms = int(time.time() * 1000)
    for _ in range(3):
        await handler(_record(BODY, {"model": b"lin"}))
    for i in range(50):  # names nobody registered: one series, not fifty
        await handler(_record(BODY, {"model": f"no-such-{i}".encode()}))
    await handler(_record(BODY, {"model": b"lin", "model_version": b"99"}))
    await handler(_record(b"not arrow", {"model": b"lin"}))
    bad = to_ipc_stream(pa.table({"a": [-1.0], "b": [0.0]}))
    await handler(_record(bad, {"model": b"lin"}))
    await handler(replace(_record(BODY, {"model": b"lin"}), timestamp=now_ms - 2000))

    r = metrics.registry
    assert sorted(
        (s["model"], s["version"], s["status"], s["error_code"])
        for s in _series(r, "modelbus_requests_total")
    ) == [
        ("_unknown", "", "error", "model_not_found"),
        ("lin", "", "error", "bad_request"),
        ("lin", "", "error", "model_not_found"),  # no version 99: none was resolved
        ("lin", "3", "error", "model_failed"),
        ("lin", "3", "ok", ""),
    ]
    total = "modelbus_requests_total"
    assert _value(r, total, model="lin", version="3", **LANE, status="ok", error_code="") == 4
    assert _value(r, total, model=UNKNOWN, version="", **LANE, status="error",
                  error_code="model_not_found") == 50
    assert _value(r, total, model="lin", version="", **LANE, status="error",
                  error_code="model_not_found") == 1
    assert _value(r, total, model="lin", version="", **LANE, status="error",
                  error_code="bad_request") == 1
    assert _value(r, total, model="lin", version="3", **LANE, status="error",
                  error_code="model_failed") == 1
    assert _value(r, "modelbus_request_duration_seconds_count", model="lin", version="3",
                  lane="interactive") == 5
    # Only the record with a timestamp has a queue time: about two seconds on the topic.
    assert _value(r, "modelbus_request_queue_duration_seconds_count",
                  model="lin", version="3", lane="interactive") == 1
    queued = _value(r, "modelbus_request_queue_duration_seconds_sum", model="lin", version="3",
                    lane="interactive")
    assert queued is not None and 2.0 <= queued < 10.0


async def test_predict_calls_are_timed_and_their_rows_counted() -> None:
    metrics = WorkerMetrics()
    predictor = MeasuredPredictor(LinearPredictor(), metrics.batch_predicted)
    table = pa.table({"a": [1.0, 2.0], "b": [0.0, 0.0]})
    await predictor.predict("lin", "3", table)
    await predictor.predict("lin", "3", pa.concat_tables([table, table, table]))
    r = metrics.registry
    assert _value(r, "modelbus_batch_rows_count", model="lin", version="3") == 2
    assert _value(r, "modelbus_batch_rows_sum", model="lin", version="3") == 8
    assert _value(r, "modelbus_batch_rows_bucket", model="lin", version="3", le="2.0") == 1


def test_cold_starts_and_containers() -> None:
    metrics = WorkerMetrics()
    metrics.container_started("lin", "3", True, 12.5)
    metrics.container_started("lin", "3", False, 3.0)
    metrics.set_containers({"warm": 2, "starting": 1})
    r = metrics.registry
    assert _value(r, "modelbus_container_starts_total", model="lin", version="3",
                  result="ok") == 1
    assert _value(r, "modelbus_container_starts_total", model="lin", version="3",
                  result="error") == 1
    assert _value(r, "modelbus_cold_start_seconds_count", model="lin", version="3") == 1
    assert _value(r, "modelbus_cold_start_seconds_sum", model="lin", version="3") == 12.5
    assert [(s["state"], _value(r, "modelbus_containers", **s))
            for s in _series(r, "modelbus_containers")] == [
        ("warm", 2), ("starting", 1), ("standby", 0)
    ]


def test_each_service_has_a_registry_of_its_own() -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    one.container_started("lin", "3", True, 1.0)
    assert _value(two.registry, "modelbus_container_starts_total", model="lin", version="3",
                  result="ok") is None


def test_a_bulk_lane_request_is_counted_under_its_lane() -> None:
    metrics = WorkerMetrics()
    token = CURRENT_LANE.set("bulk")
    try:
        metrics.request_predicted("lin", "3", 2000, 0.01)
    finally:
        CURRENT_LANE.reset(token)
    metrics.answered("lin", "3", "ok", "", 0.02, None, "bulk")
    r = metrics.registry
    assert _value(r, "modelbus_request_predict_duration_seconds_count", model="lin",
                  version="3", lane="bulk") == 1
    assert _value(r, "modelbus_requests_total", model="lin", version="3", lane="bulk",
                  status="ok", error_code="") == 1
    assert _value(r, "modelbus_requests_total", model="lin", version="3", **LANE,
                  status="ok", error_code="") is None
