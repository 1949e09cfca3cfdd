"""Result records → Parquet-ready tables, one per model version plus one for errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import ConsumerRecord

from modelbus_client.cli.results_batches import (
    ERROR_SCHEMA,
    ERRORS_DIR,
    UNDECODABLE,
    UNREADABLE,
    UNWRITABLE,
    ResultRecord,
    build_tables,
    partition_dir,
)
from modelbus_client.cli.results_writer import write_batch
from modelbus_client.tables import to_ipc_stream


def _ok(cid: str, model: str, version: str, table: pa.Table | dict[str, list[object]],
        offset: int = -1) -> ResultRecord:
    headers = {"correlation_id": cid, "status": "ok", "model": model, "model_version": version}
    data = table if isinstance(table, pa.Table) else pa.table(table)
    return ResultRecord(headers, to_ipc_stream(data), "results", 0, offset)


def _codes(tables: dict[str, pa.Table]) -> list[tuple[str, str]]:
    errors = tables[ERRORS_DIR]
    return list(zip(errors.column("correlation_id").to_pylist(),
                    errors.column("error_code").to_pylist(), strict=True))


def test_results_grouped_by_model_version_with_ids_in_front() -> None:
    records = [
        _ok("a", "m", "1", {"Predicted": [1.0, 2.0]}),
        _ok("b", "m", "1", {"Predicted": [3.0]}),
        _ok("c", "m", "2", {"Predicted": [4.0]}),
        ResultRecord(
            {"correlation_id": "d", "status": "error", "model": "m", "error_code": "timeout",
             "error_message": "slow"},
            b'{"error_code": "timeout"}', "results", 0, 7,
        ),
    ]
    tables = build_tables(records).tables
    assert set(tables) == {"m/v1", "m/v2", ERRORS_DIR}
    v1 = tables["m/v1"]
    assert v1.column_names == ["correlation_id", "model", "model_version", "row_index", "Predicted"]
    assert v1.column("correlation_id").to_pylist() == ["a", "a", "b"]
    assert v1.column("row_index").to_pylist() == [0, 1, 0]
    assert tables[ERRORS_DIR].schema == ERROR_SCHEMA
    assert tables[ERRORS_DIR].to_pylist() == [
        {"correlation_id": "d", "model": "m", "model_version": "", "error_code": "timeout",
         "error_message": "slow", "topic": "results", "partition": 0, "offset": 7}
    ]


def test_unreadable_ok_result_is_recorded_as_an_error() -> None:
    bad = ResultRecord({"correlation_id": "x", "status": "ok", "model": "m"}, b"garbage")
    errors = build_tables([bad]).tables[ERRORS_DIR]
    assert errors.column("error_code").to_pylist() == [UNREADABLE]
    assert errors.column("error_message").to_pylist()[0].startswith("invalid Arrow IPC stream")


def test_results_beyond_the_row_bound_are_errors() -> None:
    tables = build_tables([_ok("big", "m", "1", {"Predicted": [0.0] * 11}),
                           _ok("small", "m", "1", {"Predicted": [0.0] * 10})], max_rows=10).tables
    assert _codes(tables) == [("big", UNREADABLE)]
    assert "row count 11 exceeds the limit of 10" in tables[ERRORS_DIR]["error_message"][0].as_py()
    assert tables["m/v1"].num_rows == 10


def test_header_problems_and_undecodable_records_are_errors() -> None:
    raw = ConsumerRecord(
        topic="results", partition=2, offset=5, timestamp=0, timestamp_type=0, key=b"h",
        value=to_ipc_stream(pa.table({"Predicted": [1.0]})), checksum=None,
        serialized_key_size=1, serialized_value_size=0,
        headers=(("status", b"ok"), ("model", b"m\xff"), ("correlation_id", b"h")),
    )
    from_kafka = ResultRecord.of(raw)
    assert from_kafka.headers["model"] == "m\ufffd"
    assert from_kafka.problem is not None and "header 'model' is not UTF-8" in from_kafka.problem
    lost = ResultRecord.undecodable("results", 2, 6, "UnicodeDecodeError: bad header name")
    tables = build_tables([from_kafka, lost]).tables
    assert set(tables) == {ERRORS_DIR}
    assert tables[ERRORS_DIR].select(["correlation_id", "error_code", "partition", "offset"]) \
        .to_pylist() == [
        {"correlation_id": "h", "error_code": UNREADABLE, "partition": 2, "offset": 5},
        {"correlation_id": "", "error_code": UNDECODABLE, "partition": 2, "offset": 6},
    ]


def test_tables_parquet_cannot_hold_are_errors_and_the_rest_is_written(tmp_path: Path) -> None:
    interval = pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())
    records = [
        _ok("ok-1", "m", "1", {"Predicted": [1.0]}),
        _ok("interval", "m", "1", pa.table({"Predicted": interval})),
        _ok("duplicates", "m", "1", pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])],
                                                         names=["Predicted", "Predicted"])),
        _ok("clash", "m", "1", {"row_index": [5]}),
        _ok("strings", "m", "1", {"Predicted": ["x"]}),
        _ok("ints", "m", "1", {"Predicted": [2]}),  # int64 merges into double
        _ok("extra", "m", "1", {"Predicted": [3.0], "Other": ["y"]}),  # a new column: nulls
        _ok("empty-struct", "m", "2", pa.table({"s": pa.array([{}], pa.struct([]))})),
    ]
    batch = build_tables(records)
    assert _codes(batch.tables) == [
        ("interval", UNWRITABLE), ("duplicates", UNWRITABLE), ("clash", UNWRITABLE),
        ("strings", UNWRITABLE), ("empty-struct", UNWRITABLE),
    ]
    messages = batch.tables[ERRORS_DIR].column("error_message").to_pylist()
    assert "month_day_nano_interval" in messages[0]
    assert messages[1] == "duplicate column names ['Predicted']"
    assert messages[2] == "duplicate column names ['row_index'] (row_index: added in front of " \
        "every result)"
    assert messages[3].startswith("schema differs from earlier results of this model version")
    assert "no child field" in messages[4]
    assert [r.headers["correlation_id"] for r in batch.members["m/v1"]] == ["ok-1", "ints",
                                                                             "extra"]
    paths = write_batch(tmp_path, records)
    assert sorted(p.parent.relative_to(tmp_path).as_posix() for p in paths) == [ERRORS_DIR, "m/v1"]
    written = pq.read_table(tmp_path / "m" / "v1")
    assert written.select(["correlation_id", "Predicted", "Other"]).to_pylist() == [
        {"correlation_id": "ok-1", "Predicted": 1.0, "Other": None},
        {"correlation_id": "ints", "Predicted": 2.0, "Other": None},
        {"correlation_id": "extra", "Predicted": 3.0, "Other": "y"},
    ]
    assert pq.read_table(tmp_path / ERRORS_DIR).num_rows == 5
    assert not list(tmp_path.rglob("*.tmp"))


def test_directory_names_are_safe() -> None:
    assert partition_dir("a b/../c", "3") == "a_b_.._c/v3"
    assert partition_dir("..", "") == "_../v_"
