"""``modelbus dlq replay`` with the whole product: a request that failed because its model
was missing is sent again once the model is registered, and its caller's reply topic gets
the answer under the original correlation id; a second replay sends nothing.

How the dead letter comes about: a worker answers ``model_not_found`` and keeps no DLQ copy
(only ``bad_request`` and ``internal`` are copied; see ``modelbus_worker/handler.py``). So
the test sends the request through the real worker (which answers ``model_not_found`` on the
caller's reply topic), reads that very record back from the requests topic, and writes its
DLQ copy with ``modelbus_delivery.dlq.dlq_copy`` and code ``model_not_found``: the record a
worker that copied such requests would have written (the same function writes the worker's
copies). Everything after that is the operator's: ``dlq list``, registering the model,
``dlq replay``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence

import pytest
from aiokafka import ConsumerRecord
from mlflow import MlflowClient
from tests.support.kafka import produce, read_topic
from tests.support.waiting import async_wait_for

from modelbus.client import AsyncModelbusClient
from modelbus_contract.arrow_codec import ipc_to_table
from modelbus_contract.errors import ModelNotFound
from modelbus_contract.headers import header_dict
from modelbus_delivery.dlq import dlq_copy
from modelbus_delivery.records import Inbound

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration


async def modelbus(stack: InferenceStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    env |= {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
            "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "modelbus", *args], env=env,
        capture_output=True, text=True, timeout=120,
    )


async def _register_tricky_copy(stack: InferenceStack, name: str) -> str:
    """``name`` registered with the tricky model's files (its image is built already)."""
    uri = stack.settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = client.get_model_version(TRICKY_MODEL, stack.tricky.version)
    client.create_registered_model(name, tags={"datagrok": ""})
    stack.more_models.append(name)
    mv = client.create_model_version(name, first.source, run_id=first.run_id,
                                     model_id=first.source.removeprefix("models:/"))
    key = f"{name}/{mv.version}"
    await async_wait_for(lambda: key in stack.worker.catalog.entries, 60,
                         message=f"{key} in the worker's catalog")
    await stack.pool.warm(name, str(mv.version))
    return str(mv.version)


def _of(cid: str, status: str | None = None) -> Callable[[Sequence[ConsumerRecord]], bool]:
    """Whether records hold one of ``cid`` (with ``status``, when given)."""
    def found(records: Sequence[ConsumerRecord]) -> bool:
        return any(_mine(r, cid) and (status is None or _header(r, "status") == status)
                   for r in records)
    return found


def _header(record: ConsumerRecord, name: str) -> str | None:
    return header_dict(record.headers).get(name)


def _mine(record: ConsumerRecord, cid: str) -> bool:
    return _header(record, "correlation_id") == cid


async def test_a_request_refused_for_its_missing_model_is_answered_after_a_replay(
    inference_stack: InferenceStack,
) -> None:
    stack = inference_stack
    settings, topics = stack.settings, stack.settings.topics
    bootstrap = settings.kafka_bootstrap_servers
    name = f"{TRICKY_MODEL}-late-{uuid.uuid4().hex[:8]}"
    cid = f"replay-{uuid.uuid4().hex}"
    reply_topic = f"{settings.topic_prefix}replies.caller-{uuid.uuid4().hex[:8]}"

    # The caller asks for a model nobody registered yet, on a reply topic of its team.
    async with AsyncModelbusClient(settings=settings, reply_topic=reply_topic) as caller:
        with pytest.raises(ModelNotFound):
            await caller.predict(name, {"Molecule": ["CCO", "c1ccccc1O"]}, correlation_id=cid,
                                 timeout=60)
    sent = await read_topic(bootstrap, topics.requests, until=_of(cid))
    (request,) = [r for r in sent if _mine(r, cid)]
    copy = dlq_copy(topics.dlq, Inbound.of(request), "model_not_found",
                    f"no model named {name!r} in the catalog")
    await produce(bootstrap, topics.dlq, copy.value, key=copy.key,
                  headers=list(copy.headers.items()))
    dead = await read_topic(bootstrap, topics.dlq, until=_of(cid))
    (letter,) = [r for r in dead if _mine(r, cid)]
    where = f"{letter.partition}@{letter.offset}"

    listed = await modelbus(stack, "dlq", "list", "--examples", "100")
    assert listed.returncode == 0, listed.stderr
    (line,) = [x for x in listed.stdout.splitlines() if x.startswith("model_not_found")]
    assert f"from {topics.requests}" in line and where in line

    version = await _register_tricky_copy(stack, name)  # the cause is fixed

    replayed = await modelbus(stack, "dlq", "replay", "--correlation-id", cid, "--rate", "5/s")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(
        f"replayed  {where}  model_not_found, model {name}, correlation_id {cid} -> "
        f"{topics.requests}/"), replayed.stdout
    assert replayed.stderr.strip().splitlines()[-1] == "1 of 1 sent"

    replies = await read_topic(bootstrap, reply_topic, until=_of(cid, "ok"), timeout=120)
    mine = [r for r in replies if _mine(r, cid)]
    statuses = [_header(r, "status") for r in mine]
    assert statuses == ["error", "ok"]  # model_not_found first, then the replay's answer
    ok = mine[-1]
    headers = header_dict(ok.headers)
    assert (headers["model"], headers["model_version"], ok.key) == (name, version, request.key)
    assert ipc_to_table(ok.value).column("Predicted").to_pylist() == ["3", "9"]

    # Replayed once: a second run sends nothing, unless asked.
    again = await modelbus(stack, "dlq", "replay", "--correlation-id", cid)
    assert again.returncode == 0, again.stderr
    assert f"skipped   {where}  replayed before" in again.stdout
    requests = await read_topic(bootstrap, topics.requests)
    copies = [r for r in requests if _mine(r, cid)]
    assert [_header(r, "replayed_from") for r in copies] == [
        None, f"{topics.dlq}/{where}"]
