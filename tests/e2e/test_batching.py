"""Micro-batching through the real broker and a real container: concurrent requests share a
predict and each answer carries exactly its own rows; failures and opt-outs stay apart."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from mlflow import MlflowClient
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_contract.errors import ModelFailed
from modelbus_worker.batching import BatchingPredictor

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration


def _batching(stack: InferenceStack) -> BatchingPredictor:
    predictor = stack.worker.predictor
    assert isinstance(predictor, BatchingPredictor)
    return predictor


async def _copy_of_tricky(stack: InferenceStack, tags: dict[str, str] | None = None) -> str:
    """A registered model of its own with the tricky model's files (its dependency image is
    built already); a model of its own, so other tests' "newest version" stays the same."""
    uri = stack.settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = client.get_model_version(TRICKY_MODEL, stack.tricky.version)
    name = f"{TRICKY_MODEL}-copy-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name, tags={"datagrok": ""})
    stack.more_models.append(name)
    model_id = first.source.removeprefix("models:/")  # a logged model: models:/<model id>
    mv = client.create_model_version(name, first.source, run_id=first.run_id, tags=tags,
                                     model_id=model_id)
    key = f"{name}/{mv.version}"
    await async_wait_for(lambda: key in stack.worker.catalog.entries, 60,
                         message=f"{key} in the worker's catalog")
    await stack.pool.warm(name, str(mv.version))
    return name


async def _concurrently(
    client: AsyncModelbusClient, name: str, version: str, inputs: list[list[str]]
) -> list[object]:
    return await asyncio.gather(
        *(client.predict(name, {"Molecule": rows}, version=version, timeout=60)
          for rows in inputs),
        return_exceptions=True,
    )


async def test_concurrent_requests_share_predicts_and_get_exactly_their_rows(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    batching = _batching(inference_stack)
    before = batching.batches
    inputs = [["x" * n] * (1 + n % 3) for n in range(1, 61)]
    answers = await _concurrently(client, TRICKY_MODEL, inference_stack.tricky.version, inputs)
    for rows, answer in zip(inputs, answers, strict=True):
        assert answer.column("Predicted").to_pylist() == [str(len(v)) for v in rows]  # type: ignore[attr-defined]
    assert batching.batches > before


async def test_one_failing_request_in_a_batch_fails_alone(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    inputs = [["a" * n] for n in range(1, 20)]
    inputs[7] = ["ok", "boom"]
    answers = await _concurrently(client, TRICKY_MODEL, inference_stack.tricky.version, inputs)
    failed = [n for n, a in enumerate(answers) if isinstance(a, ModelFailed)]
    assert failed == [7]
    for n, (rows, answer) in enumerate(zip(inputs, answers, strict=True)):
        if n != 7:
            assert answer.column("Predicted").to_pylist() == [str(len(v)) for v in rows]  # type: ignore[attr-defined]


async def test_a_model_that_is_not_row_wise_is_answered_unbatched(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    name, version = await _copy_of_tricky(inference_stack), "1"
    batching = _batching(inference_stack)
    inputs = [["abc"], ["collapse", "x", "y"], ["abcd", "e"]]
    expected = [["3"], ["3"], ["4", "1"]]  # the collapsing request: one row, its row count
    # Until one round lands in one batch (concurrent requests usually do at once), every
    # round is answered correctly; the batch that mixes them finds the model not row-wise.
    for _ in range(20):
        answers = await _concurrently(client, name, version, inputs)
        assert [a.column("Predicted").to_pylist() for a in answers] == expected  # type: ignore[attr-defined]
        if not batching.row_wise(name, version):
            break
    assert not batching.row_wise(name, version)
    assert batching.row_wise(TRICKY_MODEL, inference_stack.tricky.version)
    answers = await _concurrently(client, name, version, inputs)  # unbatched from now on
    assert [a.column("Predicted").to_pylist() for a in answers] == expected  # type: ignore[attr-defined]


async def test_the_opt_out_tag_turns_batching_off_for_that_version(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    name = await _copy_of_tricky(inference_stack, tags={"modelbus.batching": "off"})
    version = "1"
    entry = inference_stack.worker.catalog.entries[f"{name}/{version}"]
    assert entry.batching is False
    batching = _batching(inference_stack)
    before = batching.batches
    inputs = [["y" * n] for n in range(1, 30)]
    answers = await _concurrently(client, name, version, inputs)
    assert [a.column("Predicted").to_pylist() for a in answers] == [  # type: ignore[attr-defined]
        [str(len(rows[0]))] for rows in inputs
    ]
    assert batching.batches == before
