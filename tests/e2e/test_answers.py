"""Who answered, through the real worker: ``predict_answer`` tells the version an alias
resolved to and the correlation id, ``predict_df`` answers a DataFrame, in both clients."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from modelbus.client import AsyncModelbusClient, ModelbusClient, Prediction

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration

MOLECULES = pd.DataFrame({"Molecule": ["CCO", "c1ccccc1O"]}, index=["first", "second"])


async def test_the_async_client_tells_who_answered(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    answer = await client.predict_answer(TRICKY_MODEL, MOLECULES, version="@stable",
                                         correlation_id="who-answered-1")
    assert (answer.model, answer.model_version, answer.correlation_id) == (
        TRICKY_MODEL, inference_stack.tricky.version, "who-answered-1")
    assert answer.table.column("Predicted").to_pylist() == ["3", "9"]
    frame = await client.predict_df(TRICKY_MODEL, MOLECULES)
    assert list(frame.index) == ["first", "second"] and list(frame["Predicted"]) == ["3", "9"]


async def test_the_blocking_client_tells_who_answered(inference_stack: InferenceStack) -> None:
    def calls() -> tuple[Prediction, pd.DataFrame]:
        with ModelbusClient(settings=inference_stack.settings) as blocking:
            answer = blocking.predict_answer(TRICKY_MODEL, MOLECULES, version="@stable")
            return answer, blocking.predict_df(TRICKY_MODEL, MOLECULES)

    answer, frame = await asyncio.to_thread(calls)
    assert answer.model_version == inference_stack.tricky.version
    assert len(answer.correlation_id) == 32 and answer.headers["status"] == "ok"
    assert list(frame.index) == ["first", "second"] and list(frame["Predicted"]) == ["3", "9"]
