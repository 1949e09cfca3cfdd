"""``modelbus tail`` and ``modelbus dlq list|replay`` against the real broker, as processes:
requests, results, catalog and DLQ records are shown decoded, and poison of every kind
(bodies no one can read, headers that are not UTF-8, header names the Kafka client cannot
decode) is shown in its place, never crashed on. The full replay (a request answered after
its model is registered) is ``tests/e2e/test_dlq_replay.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest
from tests.support.kafka import produce, read_topic
from tests.support.settings import isolated_settings

from modelbus_client.tables import to_ipc_stream
from modelbus_contract.messages import CatalogEntry
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import plan
from modelbus_delivery.dlq import dlq_copy, dlq_note
from modelbus_delivery.records import Inbound
from modelbus_delivery.topics import ensure_topics

from .helpers import Raw, poison, produce_each

pytestmark = pytest.mark.integration

NO_MLFLOW = "http://127.0.0.1:9"
REQUEST = to_ipc_stream(pa.table({"Molecule": ["CCO", "c1ccccc1O", "C", "N"]}))


@pytest.fixture
async def stack_topics(kafka_bootstrap: str) -> ModelbusSettings:
    """The session's broker, every planned topic made under a prefix of the test's own."""
    settings = isolated_settings(kafka_bootstrap, NO_MLFLOW, "ops")
    await ensure_topics(kafka_bootstrap, plan(settings))
    return settings


def _environment(settings: ModelbusSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    return {**env, "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MODELBUS_TOPIC_PREFIX": settings.topic_prefix}


async def modelbus(settings: ModelbusSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "modelbus", *args], env=_environment(settings),
        capture_output=True, text=True, timeout=120,
    )


def blocks(stdout: str) -> list[str]:
    return [b for b in stdout.split("\n\n") if b.strip()]


async def test_tail_shows_requests_and_their_poison(stack_topics: ModelbusSettings) -> None:
    settings, bootstrap = stack_topics, stack_topics.kafka_bootstrap_servers
    topic = settings.topics.requests
    await produce_each(bootstrap, topic, [
        Raw(REQUEST, b"demo", (("model", b"demo"), ("correlation_id", b"c-1"))),
        Raw(b"\x00\x01 not arrow", b"demo", (("model", b"demo"), ("correlation_id", b"c-2"))),
        poison(REQUEST, b"demo"),
        Raw(REQUEST, b"\xff", (("model", b"\xffbad"), ("correlation_id", b"c-3"))),
        Raw(REQUEST, b"other", (("model", b"other"), ("correlation_id", b"c-4"))),
    ])
    shown = await modelbus(settings, "tail", "requests", "--from-beginning", "--no-follow",
                           "--rows", "2")
    assert shown.returncode == 0, shown.stderr
    first, garbage, undecodable, bad_headers, other = blocks(shown.stdout)
    assert first.startswith(f"{topic}/0@0  ") and "key='demo'" in first
    assert "  correlation_id: c-1" in first
    assert "value: Arrow" in first and "4 rows: Molecule: string" in first
    assert "    c1ccccc1O" in first and "… 2 more rows" in first
    assert "UNREADABLE (12 bytes): neither an Arrow IPC stream nor UTF-8 text" in garbage
    assert "00 01 20 6e 6f 74" in garbage
    assert undecodable.strip() == (
        f"{topic}/0@2  UNDECODABLE: the Kafka client cannot decode this record: "
        + undecodable.split("cannot decode this record: ", 1)[1].strip())
    assert "! header 'model' is not UTF-8" in bad_headers and "key=0xff" in bad_headers
    assert "correlation_id: c-4" in other
    assert shown.stderr.strip().splitlines()[-1] == "5 records shown, 3 with problems"

    chosen = await modelbus(settings, "tail", topic, "--from-beginning", "--no-follow",
                            "--correlation-id", "c-4", "--json")
    unknown, doc = (json.loads(line) for line in chosen.stdout.splitlines())
    assert (unknown["offset"], "undecodable" in unknown) == (2, True)  # could be it: shown
    assert (doc["offset"], doc["headers"]["model"], doc["value"]["rows"]) == (4, "other", 4)
    by_model = await modelbus(settings, "tail", "requests", "--from-beginning", "--no-follow",
                              "--model", "demo")
    # the poison record is shown whatever is asked: nothing of it is known
    assert [b.split("  ")[0] for b in blocks(by_model.stdout)] == [
        f"{topic}/0@0", f"{topic}/0@1", f"{topic}/0@2"]


async def test_tail_shows_results_catalog_and_dead_letters(
    stack_topics: ModelbusSettings,
) -> None:
    settings, bootstrap = stack_topics, stack_topics.kafka_bootstrap_servers
    topics = settings.topics
    field = pa.field("Predicted", pa.string(), metadata={"semtype": "Molecule"})
    answer = to_ipc_stream(pa.table([pa.array(["3"])], schema=pa.schema([field])))
    await produce_each(bootstrap, topics.results, [
        Raw(answer, b"demo", (("status", b"ok"), ("model", b"demo"), ("model_version", b"2"),
                              ("correlation_id", b"c-1"))),
        Raw(b'{"schema_version": "1", "error_code": "model_not_found", "error_message": "x"}',
            b"gone", (("status", b"error"), ("correlation_id", b"c-2"))),
        Raw(b"", b"demo", (("status", b"preparing"), ("step", b"images"))),
    ])
    results = await modelbus(settings, "tail", "results", "--from-beginning", "--no-follow")
    ok, error, notice = blocks(results.stdout)
    assert "Predicted: string [Molecule]" in ok and "    3" in ok
    assert '"error_code": "model_not_found"' in error and "value: JSON" in error
    assert "status: preparing" in notice and "value: empty" in notice

    entry = CatalogEntry(name="demo", version="2", status="ready")
    await produce_each(bootstrap, topics.catalog, [
        Raw(entry.model_dump_json().encode(), b"demo/2"),
        Raw(b'{"name": "demo"}', b"demo/3"),
        Raw(None, b"demo/1"),
        Raw(b"{not json", b"demo/4"),
    ])
    catalog = await modelbus(settings, "tail", "catalog", "--from-beginning", "--no-follow",
                             "--model", "demo")
    good, invalid, tombstone, text = blocks(catalog.stdout)
    assert '"status": "ready"' in good and "!" not in good
    assert "! not a valid CatalogEntry: version: Field required" in invalid
    assert "value: none (tombstone)" in tombstone
    assert "value: text" in text and "! the catalog topic holds JSON messages" in text

    request = Inbound(topics.requests, 3, 17, b"demo", REQUEST, (
        ("model", b"demo"), ("correlation_id", b"c-9")))
    copy = dlq_copy(topics.dlq, request, "bad_request", "header 'reply_to' is refused")
    note = dlq_note(topics.dlq, topics.requests, 3, 18, "bad_request", "cannot decode")
    await produce_each(bootstrap, topics.dlq, [
        Raw(copy.value, copy.key, tuple((k, v.encode()) for k, v in copy.headers.items())),
        Raw(note.value, note.key, tuple((k, v.encode()) for k, v in note.headers.items())),
        poison(b"x", None),
    ])
    dead = await modelbus(settings, "tail", "dlq", "--from-beginning", "--no-follow", "--json")
    assert dead.returncode == 0, dead.stderr
    docs = [json.loads(line) for line in dead.stdout.splitlines()]
    assert docs[0]["headers"]["dlq_error_code"] == "bad_request"
    assert docs[0]["headers"]["dlq_source"] == topics.requests
    assert docs[0]["value"]["kind"] == "arrow" and docs[0]["value"]["rows"] == 4
    assert docs[1]["value"] == {"kind": "empty"} and docs[1]["key"] is None
    assert "cannot decode this record" in docs[2]["undecodable"]


async def test_tail_follows_new_records_and_stops_when_told(
    stack_topics: ModelbusSettings,
) -> None:
    settings = stack_topics
    topic = settings.topics.results
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelbus", "tail", "results", "--max-records", "2",
        env=_environment(settings), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        sent = 0
        while process.returncode is None and time.monotonic() < deadline:  # until it has 2
            await produce(settings.kafka_bootstrap_servers, topic, b"", key=f"k{sent}",
                          headers=[("status", "alive")])
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.5)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, err
    shown = blocks(out)
    assert len(shown) == 2 and all("status: alive" in b for b in shown)
    idle = await modelbus(settings, "tail", "results", "--max-idle", "1")
    assert (idle.returncode, idle.stdout) == (0, "")
    assert idle.stderr.strip().splitlines()[-1] == "0 records shown"


async def test_dlq_list_groups_by_reason_and_replay_refuses_what_it_cannot_send(
    stack_topics: ModelbusSettings,
) -> None:
    settings, bootstrap = stack_topics, stack_topics.kafka_bootstrap_servers
    topics = settings.topics
    records = []
    for n, (code, message) in enumerate([
        ("model_not_found", "no model named 'a'"), ("bad_request", "header 'model' is missing"),
        ("model_not_found", "no model named 'b'"),
    ]):
        source = Inbound(topics.requests, 0, n, b"m", REQUEST, (
            ("model", b"m"), ("correlation_id", f"c-{n}".encode())))
        out = dlq_copy(topics.dlq, source, code, message)
        records.append(Raw(out.value, out.key,
                           tuple((k, v.encode()) for k, v in out.headers.items())))
    event = dlq_copy(topics.dlq, Inbound(topics.discovered, 0, 5, b"m/1", b"{}"), "bad_request",
                     "not a discovery event")
    records.append(Raw(event.value, event.key,
                       tuple((k, v.encode()) for k, v in event.headers.items())))
    records.append(poison(b"x", None))
    await produce_each(bootstrap, topics.dlq, records)

    listed = await modelbus(settings, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"model_not_found  2 records  from {topics.requests}  at 0@0, 0@2"
    assert lines[1] == "    no model named 'a'"
    assert f"bad_request  1 record  from {topics.discovered}  at 0@3" in lines
    assert lines[-1].startswith("undecodable  at 0@4: the Kafka client cannot decode")
    assert listed.stderr.strip().splitlines()[-1] == (
        f"5 dead letters in {topics.dlq}, 3 reasons")

    nothing = await modelbus(settings, "dlq", "replay")
    assert nothing.returncode == 2 and "choose what to send" in nothing.stderr
    dry = await modelbus(settings, "dlq", "replay", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"skipped   0@3  not a request: from {topics.discovered}" in dry.stdout
    assert "would send 0@0  model_not_found, model m, correlation_id c-0" in dry.stdout
    assert dry.stderr.strip().splitlines()[-1] == "3 would be sent (1 not a request)"
    replayed = await modelbus(settings, "dlq", "replay", "--offset", "0:1", "--rate", "50/s")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith("replayed  0@1  bad_request, model m, correlation_id c-1")
    again = await modelbus(settings, "dlq", "replay", "--offset", "1")
    assert "skipped   0@1  replayed before: replayed " in again.stdout
    assert again.stderr.strip().splitlines()[-1] == (
        "0 of 0 sent (1 replayed before; --again sends those replayed before)")
    sent = await read_topic(bootstrap, topics.requests)
    assert [dict(r.headers)["replayed_from"] for r in sent] == [f"{topics.dlq}/0@1".encode()]
    assert [(r.key, r.value, dict(r.headers)["correlation_id"]) for r in sent] == [
        (b"m", REQUEST, b"c-1")]
    ledger = await read_topic(bootstrap, topics.dlq_replays)
    assert [r.key for r in ledger] == [b"0:1"]
    listed = await modelbus(settings, "dlq", "list", "--json")
    groups = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [g.get("replayed") for g in groups[:3]] == [0, 1, 0]
