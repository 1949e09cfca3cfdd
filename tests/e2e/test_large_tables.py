"""Tables larger than a record, through the real broker and worker: chunked, in order,
resumable, with failed rows reported."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer
from mlflow import MlflowClient
from tests.support.kafka import produce, read_topic

from modelbus.client import AsyncModelbusClient
from modelbus_client.chunking import chunk_count, sized_chunks
from modelbus_client.cli.predict_spool import MANIFEST, JobIdentity, Spool
from modelbus_contract.headers import header_dict
from modelbus_delivery.poison import advance, expected_positions, getmany_skipping_poison
from modelbus_delivery.topics import assign_all

from .conftest import TRICKY_MODEL, InferenceStack

pytestmark = pytest.mark.integration


def _env(stack: InferenceStack, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
        "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix,
        **extra,
    }


async def _cli(stack: InferenceStack, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelbus", *args, env=_env(stack, **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _iris_table(stack: InferenceStack, rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    columns = list(stack.demo[1].sample.columns)
    return pa.table({c: rng.uniform(0.1, 8.0, rows) for c in columns})


def _iris_expected(stack: InferenceStack, table: pa.Table) -> list[int]:
    iris, uri = stack.demo[1], stack.settings.mlflow_tracking_uri
    source = MlflowClient(uri, uri).get_model_version_download_uri(iris.name, iris.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri)
    model = mlflow.pyfunc.load_model(local)
    return [int(v) for v in np.asarray(model.predict(table.to_pandas())).ravel()]


async def _chunk_records(stack: InferenceStack, topic: str, chunk_id: str | None = None,
                         after: int = -1) -> list[tuple[int, dict[str, str]]]:
    """Offset and headers of every record of ``topic`` beyond offset ``after`` that carries
    ``chunk_id`` (any chunk id: None), read until the topic stays quiet for a second.

    Records the Kafka client cannot decode (other tests send such requests) are skipped;
    the topic is not read up to its end offset, because the embedded broker reports the
    start of its last record batch plus one as the end.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic)
        await consumer.seek_to_beginning(*tps)
        expected = await expected_positions(consumer, tps)
        found: list[tuple[int, dict[str, str]]] = []
        while batch := await getmany_skipping_poison(consumer, expected, timeout_ms=1000):
            advance(expected, batch)
            for record in (r for records in batch.values() for r in records):
                headers = header_dict(record.headers)
                if record.offset > after and "chunk_id" in headers and (
                    chunk_id is None or headers["chunk_id"] == chunk_id
                ):
                    found.append((record.offset, headers))
        return found
    finally:
        await consumer.stop()


async def test_a_table_twenty_times_the_record_limit_is_answered_in_order(
    inference_stack: InferenceStack, client: AsyncModelbusClient, tmp_path: Path
) -> None:
    stack = inference_stack
    limit = stack.settings.max_message_bytes
    rows = 20 * limit // 32 + 1000  # four doubles a row: over 20 records' worth
    table = _iris_table(stack, rows)
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, source)

    code, stdout, stderr = await _cli(
        stack, "predict", "--model", stack.demo[1].name, str(source), "-o", str(out),
        "--errors", str(tmp_path / "errors.parquet"),
        # Its answers are read below on the results topic, not on a reply topic of its own.
        MODELBUS_CLIENT_REPLY_TOPIC=stack.settings.topics.results,
    )

    assert code == 0, stderr
    assert f"{rows:,} of {rows:,} rows answered" in stdout
    result = pq.read_table(out)
    assert result.column_names == ["species"]
    assert result.column("species").to_pylist() == _iris_expected(stack, table)
    assert not Spool.beside(out).exists()
    assert not (tmp_path / "errors.parquet").exists()  # nothing failed
    per_chunk, _ = sized_chunks(table.to_batches(), limit, stack.settings.max_request_rows)
    expected_chunks = chunk_count(rows, per_chunk)
    assert expected_chunks is not None and expected_chunks > 20
    # predict -o sends its chunks on the bulk lane
    chunked = await _chunk_records(stack, stack.settings.topics.requests_bulk)
    jobs = {h["chunk_id"] for _, h in chunked if h.get("chunk_count") == str(expected_chunks)}
    assert len(jobs) == 1, jobs  # the run's requests: the only ones cut into that many chunks
    chunk_id = jobs.pop()
    sent = [h for _, h in chunked if h["chunk_id"] == chunk_id]
    assert sorted(int(h["chunk_index"]) for h in sent) == list(range(expected_chunks))
    assert {h["chunk_count"] for h in sent} == {str(expected_chunks)}
    answers = [h for _, h in await _chunk_records(stack, stack.settings.topics.results, chunk_id)]
    assert sorted(int(h["chunk_index"]) for h in answers) == list(range(expected_chunks))
    assert {h["status"] for h in answers} == {"ok"}


async def test_the_client_predicts_tables_and_batches_of_any_size(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    stack = inference_stack
    table = _iris_table(stack, 5 * stack.settings.max_message_bytes // 32)
    expected = _iris_expected(stack, table)
    whole = await client.predict_table(stack.demo[1].name, table.to_pandas())
    assert whole.column("species").to_pylist() == expected
    parts = [part async for part in client.predict_batches(
        stack.demo[1].name, table.to_batches(max_chunksize=10_000), window=3
    )]
    assert len(parts) > 5
    assert [v for p in parts for v in p.column("species").to_pylist()] == expected


async def test_an_interrupted_run_resumes_with_only_the_missing_chunks(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    stack = inference_stack
    table = _iris_table(stack, 200_000)
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, source)
    small = {"MODELBUS_MAX_MESSAGE_BYTES": str(64 * 1024)}  # many chunks: a run to interrupt
    spool_dir = Spool.beside(out)
    args = ("predict", "--model", stack.demo[1].name, str(source), "-o", str(out),
            "--window", "1")

    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelbus", *args, env=_env(stack, **small),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    manifest = spool_dir / MANIFEST
    while not manifest.exists() or manifest.read_text().count('"done"') < 20:
        assert first.returncode is None, "the run ended before it could be interrupted"
        await asyncio.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    await first.wait()

    identity = JobIdentity.of(source, stack.demo[1].name, None)
    spool = Spool.load(spool_dir, identity)
    assert spool is not None
    total = chunk_count(table.num_rows, spool.rows_per_chunk)
    assert total is not None and 20 <= len(spool.done) < total
    requests = stack.settings.topics.requests_bulk  # predict -o: the bulk lane
    sent_before = await _chunk_records(stack, requests, spool.chunk_id)
    assert len(sent_before) >= len(spool.done)

    code, stdout, stderr = await _cli(stack, *args, "--resume", **small)

    assert code == 0, stderr
    assert stdout.startswith(f"{table.num_rows:,} of {table.num_rows:,} rows answered"), stdout
    resent = await _chunk_records(stack, requests, spool.chunk_id, after=sent_before[-1][0])
    assert sorted(int(h["chunk_index"]) for _, h in resent) == sorted(
        set(range(total)) - set(spool.done)
    )
    assert pq.read_table(out).column("species").to_pylist() == _iris_expected(stack, table)
    assert not spool_dir.exists()


async def test_a_chunk_with_a_bad_row_is_reported_while_the_others_succeed(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    stack = inference_stack
    values = [f"m{i:05d}" for i in range(20_000)]
    values[12_345] = "boom"
    source, out, errors = (tmp_path / n for n in ("in.parquet", "out.parquet", "bad.parquet"))
    pq.write_table(pa.table({"Molecule": values}), source)
    small = {"MODELBUS_MAX_MESSAGE_BYTES": str(64 * 1024)}  # five chunks
    args = ("predict", "--model", TRICKY_MODEL, str(source), "-o", str(out),
            "--errors", str(errors))

    code, stdout, stderr = await _cli(stack, *args, **small)

    assert code == 1, (stdout, stderr)
    spool = Spool.load(Spool.beside(out), JobIdentity.of(source, TRICKY_MODEL, None))
    assert spool is not None, (stdout, stderr)
    per_chunk = spool.rows_per_chunk
    start = 12_345 // per_chunk * per_chunk
    stop = min(start + per_chunk, len(values))
    failed = stop - start
    assert (f"{len(values) - failed:,} of {len(values):,} rows answered" in stdout
            and f"{failed:,} rows in 1 chunks failed (model_failed)" in stdout), stdout
    assert stderr.strip().splitlines() == [
        f"rows {start:,} to {stop - 1:,}: model_failed: ValueError: boom: the model "
        "refused this input"
    ], stderr
    predicted = pq.read_table(out).column("Predicted").to_pylist()
    assert predicted == [None if start <= i < stop else "6" for i in range(len(values))]
    bad = pq.read_table(errors)
    assert bad.column("row_index").to_pylist() == list(range(start, stop))
    assert set(bad.column("error_code").to_pylist()) == {"model_failed"}
    assert bad.column("Molecule").to_pylist() == values[start:stop]

    requests = stack.settings.topics.requests_bulk  # predict -o: the bulk lane
    sent_before = await _chunk_records(stack, requests, spool.chunk_id)
    assert sorted(int(h["chunk_index"]) for _, h in sent_before) == list(range(5))
    code, _, _ = await _cli(stack, *args, **small)  # a retry sends the failed chunk only
    assert code == 1
    resent = await _chunk_records(stack, requests, spool.chunk_id, after=sent_before[-1][0])
    assert [int(h["chunk_index"]) for _, h in resent] == [start // per_chunk]


async def test_answers_too_large_for_a_record_are_split_until_they_fit(
    inference_stack: InferenceStack, client: AsyncModelbusClient
) -> None:
    rows = 64
    size = inference_stack.settings.max_message_bytes // 25  # 64 of them: 2.5 records
    result = await client.predict_table(TRICKY_MODEL, {"Molecule": [f"big:{size}"] * rows})
    assert result.column("Predicted").to_pylist() == ["x" * size] * rows


async def test_the_worker_echoes_chunk_headers_and_refuses_unusable_ones(
    inference_stack: InferenceStack,
) -> None:
    stack = inference_stack
    body = pa.BufferOutputStream()
    with pa.ipc.new_stream(body, pa.schema([("Molecule", pa.string())])) as writer:
        writer.write_table(pa.table({"Molecule": ["abc"]}))
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    chunk = [("chunk_id", "job-x"), ("chunk_index", "4"), ("chunk_count", "9")]
    for cid, headers in ((good, chunk), (bad, [("chunk_id", "job-x"), ("chunk_index", "four")])):
        await produce(stack.settings.kafka_bootstrap_servers, stack.settings.topics.requests,
                      body.getvalue().to_pybytes(),
                      headers=[("model", TRICKY_MODEL), ("correlation_id", cid), *headers])
    wanted = {good, bad}
    records = await read_topic(
        stack.settings.kafka_bootstrap_servers, stack.settings.topics.results,
        until=lambda rs: wanted <= {header_dict(r.headers).get("correlation_id") for r in rs},
    )
    answers = {h["correlation_id"]: h for h in map(header_dict, (r.headers for r in records))}
    assert answers[good]["status"] == "ok"
    assert {k: answers[good][k] for k in ("chunk_id", "chunk_index", "chunk_count")} == dict(chunk)
    assert answers[bad]["error_code"] == "bad_request"
    assert "'chunk_index' must be a whole number" in answers[bad]["error_message"]
    assert "chunk_id" not in answers[bad]


async def test_file_prediction_refuses_what_it_cannot_do_in_one_line(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    stack = inference_stack
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"Molecule": ["abc", "de"]}), source)

    code, _, stderr = await _cli(stack, "predict", "--model", TRICKY_MODEL, str(source),
                                 "-o", str(out), "--resume")
    assert code == 1 and stderr.strip().startswith("Error: nothing to resume"), stderr
    code, _, stderr = await _cli(stack, "predict", "--model", "no-such-model", str(source),
                                 "-o", str(out))
    assert code == 1, stderr
    assert stderr.strip().splitlines() == [
        "Error: model_not_found: no model named 'no-such-model' in the catalog"
    ], stderr
    assert not out.exists() and not Spool.beside(out).exists()

    pq.write_table(pa.table({"Molecule": ["abc", "boom"]}), source)
    code, stdout, _ = await _cli(stack, "predict", "--model", TRICKY_MODEL, str(source),
                                 "-o", str(out))
    assert code == 1
    assert stdout.startswith("0 of 2 rows answered"), stdout
    assert not out.exists()  # no chunk was answered: no output
    assert Spool.beside(out).exists()  # kept for a retry
    code, _, stderr = await _cli(stack, "predict", "--model", stack.demo[1].name, str(source),
                                 "-o", str(out))
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"Error: {Spool.beside(out)} holds a run with another model: delete it, or choose "
        "another output"
    ], stderr
