"""The CLI against the running product: predict, catalog, results → Parquet."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelbus.client import AsyncModelbusClient

from .conftest import InferenceStack

pytestmark = pytest.mark.integration


async def modelbus(
    stack: InferenceStack, *args: str, timeout: float = 120  # noqa: ASYNC109
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap_servers,
        "MODELBUS_TOPIC_PREFIX": stack.settings.topic_prefix,
        "MLFLOW_TRACKING_URI": stack.settings.mlflow_tracking_uri,
    }
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "modelbus", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


async def test_predict_prints_a_table_and_writes_files(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    csv = tmp_path / "in.csv"
    pd.DataFrame({"Molecule": ["CCO", "c1ccccc1O"]}).to_csv(csv, index=False)
    shown = await modelbus(inference_stack, "predict", "--model", "demo-molecule-score", str(csv))
    assert shown.returncode == 0, shown.stderr
    assert "Predicted" in shown.stdout
    assert len(shown.stdout.strip().splitlines()) == 3
    out = tmp_path / "out.parquet"
    saved = await modelbus(
        inference_stack, "predict", "--model", "test-tricky", "--version", "@stable",
        str(csv), "-o", str(out),
    )
    assert saved.returncode == 0, saved.stderr
    assert pq.read_table(out).column("Predicted").to_pylist() == ["3", "9"]


async def test_predict_bad_input_exits_non_zero_with_one_line(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    missing = await modelbus(inference_stack, "predict", "--model", "x", str(tmp_path / "no.csv"))
    assert "no such file" in one_line_error(missing)
    csv = tmp_path / "in.csv"
    pd.DataFrame({"smiles": ["C"]}).to_csv(csv, index=False)
    unknown = await modelbus(inference_stack, "predict", "--model", "nope", str(csv))
    assert "model_not_found: no model named 'nope'" in one_line_error(unknown)
    wrong = await modelbus(inference_stack, "predict", "--model", "test-tricky", str(csv))
    assert "schema_mismatch: missing columns ['Molecule']" in one_line_error(wrong)
    txt = tmp_path / "in.txt"
    txt.write_text("hello")
    assert "unsupported input" in one_line_error(
        await modelbus(inference_stack, "predict", "--model", "test-tricky", str(txt))
    )


async def test_catalog_lists_entries(inference_stack: InferenceStack) -> None:
    listing = await modelbus(inference_stack, "catalog")
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if x.startswith("demo-molecule-score/"))
    assert "ready" in line
    assert "Molecule:string[Molecule]" in line
    assert "Predicted:double[Score]" in line
    as_json = await modelbus(inference_stack, "catalog", "--json")
    assert as_json.returncode == 0, as_json.stderr
    entries = [json.loads(x) for x in as_json.stdout.splitlines()]
    entry = next(e for e in entries if e["name"] == "demo-molecule-score")
    assert entry["status"] == "ready"
    assert [(i["name"], i["semtype"]) for i in entry["inputs"]] == [("Molecule", "Molecule")]


async def test_results_are_written_to_parquet_with_ids_and_versions(
    inference_stack: InferenceStack, client: AsyncModelbusClient, tmp_path: Path
) -> None:
    molecule = inference_stack.demo[0]
    await client.predict(molecule.name, molecule.sample, correlation_id="parquet-ok")
    with pytest.raises(Exception, match="boom"):
        await client.predict("test-tricky", {"Molecule": ["boom"]}, correlation_id="parquet-err")
    out = tmp_path / "results"
    proc = await modelbus(
        inference_stack, "results", "--out", str(out), "--max-idle", "3",
        "--flush-interval", "1", timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    files = list((out / molecule.name / f"v{molecule.version}").glob("*.parquet"))
    assert files
    table = pq.read_table(files).to_pandas()
    rows = table[table.correlation_id == "parquet-ok"]
    assert list(rows.row_index) == list(range(len(molecule.sample)))
    assert set(rows.model_version) == {molecule.version}
    assert "Predicted" in table.columns
    errors = pq.read_table(list((out / "_errors").glob("*.parquet"))).to_pandas()
    assert "model_failed" in set(errors[errors.correlation_id == "parquet-err"].error_code)


async def test_predict_of_a_file_over_the_record_limit_is_sent_in_chunks(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    big = tmp_path / "big.parquet"
    pd.DataFrame({"Molecule": ["C" * 100] * 20_000}).to_parquet(big)  # ~2 MB of strings
    proc = await modelbus(inference_stack, "predict", "--model", "test-tricky", str(big))
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.strip().splitlines()]
    assert lines == ["Predicted", *(["100"] * 20_000)]
    huge = tmp_path / "huge.parquet"
    pd.DataFrame({"Molecule": ["C" * 1_100_000]}).to_parquet(huge)  # one row over a record
    line = one_line_error(
        await modelbus(inference_stack, "predict", "--model", "test-tricky", str(huge))
    )
    assert line.startswith("Error: too_large: rows 0 to 0 take 1,1")
    assert line.endswith(" bytes, over the record limit of 1,048,576 bytes")


