"""Predictions through warm containers equal in-process predictions; errors are answered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pyarrow as pa
import pytest
from tests.support.waiting import async_wait_for

from modelbus_contract.errors import InferenceTimeout, ModelFailed, ModelNotFound
from modelbus_worker.runtime.arrow_io import prediction_to_table

from .conftest import Registry

pytestmark = pytest.mark.integration

INPUT = pa.table({"x": [1.0, 2.0, -0.0, 1e6], "label": ["a", "bé", "", "zz"]})


def in_process(name: str, table: pa.Table) -> pa.Table:
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    return prediction_to_table(model.predict(table.to_pandas()))


async def test_dataframe_output_equals_in_process(pools: Any, scale_model: str) -> None:
    pool = pools()
    got = await pool.predict(scale_model, "1", INPUT)
    expected = in_process(scale_model, INPUT)
    pd.testing.assert_frame_equal(got.to_pandas(), expected.to_pandas())
    assert got.column_names == ["y", "label_upper"]


async def test_unnamed_array_output_is_called_prediction(pools: Any, sum_model: str) -> None:
    pool = pools()
    table = pa.table({"x": [1.0, 2.0], "label": ["a", "b"]})
    got = await pool.predict(sum_model, "1", table)
    assert got.column_names == ["prediction"]
    assert got.column("prediction").to_pylist() == [1.0, 2.0]
    assert got.equals(in_process(sum_model, table))


async def test_model_exception_is_model_failed_and_container_survives(
    pools: Any, scale_model: str
) -> None:
    pool = pools()
    bad = pa.table({"x": [1.0, -3.0], "label": ["a", "b"]})
    with pytest.raises(ModelFailed, match="ValueError: negative x is not allowed"):
        await pool.predict(scale_model, "1", bad)
    before = pool.running()
    ok = await pool.predict(scale_model, "1", INPUT)
    assert ok.num_rows == INPUT.num_rows
    assert pool.running() == before  # same container, not restarted


async def test_concurrent_first_requests_share_one_start(pools: Any, scale_model: str) -> None:
    pool = pools()
    starts = 0
    original = pool.starter.start

    async def counting(*args: Any) -> Any:
        nonlocal starts
        starts += 1
        return await original(*args)

    pool.starter.start = counting
    results = await asyncio.gather(*(pool.predict(scale_model, "1", INPUT) for _ in range(5)))
    assert starts == 1
    assert all(r.equals(results[0]) for r in results)


async def test_slow_start_does_not_block_a_warm_model(
    pools: Any, scale_model: str, registry: Registry
) -> None:
    slow = registry.register("slow_load_model.py", "slowload")
    pool = pools()
    await pool.warm(scale_model, "1")
    cold = asyncio.create_task(pool.predict(slow, "1", INPUT.slice(0, 1)))
    await async_wait_for(lambda: pool.starting(slow, "1"), 30, interval=0.01,
                         message="the slow model's start under way")
    t0 = time.monotonic()
    for _ in range(20):
        await pool.predict(scale_model, "1", INPUT)
    warm_elapsed = time.monotonic() - t0
    assert not cold.done(), "the slow model should still be loading"
    assert warm_elapsed < 2.0
    assert (await cold).column("y").to_pylist() == [2.0]


async def test_unknown_model_is_model_not_found(pools: Any, base_image: str) -> None:
    pool = pools()
    with pytest.raises(ModelNotFound):
        await pool.predict("no-such-model", "1", INPUT)
    assert pool.running() == {}


async def test_model_that_cannot_load_is_model_failed_with_its_log(
    pools: Any, registry: Registry
) -> None:
    broken = registry.register("broken_model.py", "broken")
    pool = pools()
    with pytest.raises(ModelFailed, match="weights file is missing"):
        await pool.predict(broken, "1", INPUT)
    assert pool.running() == {}
    # Remembered: the next request is answered at once, without another start.
    with pytest.raises(ModelFailed) as again:
        await pool.predict(broken, "1", INPUT)
    assert f"{broken}/1 failed to start (1 time(s)); next attempt in" in again.value.message
    assert "weights file is missing" in again.value.message
    assert pool.start_failure(broken, "1") is not None
    assert pool.running() == {}


async def test_a_timeout_keeps_the_shared_container_while_it_answers_health_checks(
    pools: Any, scale_model: str
) -> None:
    pool = pools(request_timeout_s=90)
    first = await pool.warm(scale_model, "1")
    hang = pa.table({"x": [1.0], "label": ["__sleep__"]})
    with pytest.raises(InferenceTimeout):
        await pool.predict(scale_model, "1", hang, timeout_s=0.5)
    assert pool.running() == {f"{scale_model}/1": first}  # it still answers PING: kept
    # The next request waits for the slow one to finish, on the same warm container.
    answer = await pool.predict(scale_model, "1", INPUT, timeout_s=60)
    assert answer.num_rows == INPUT.num_rows
    assert pool.running() == {f"{scale_model}/1": first}
