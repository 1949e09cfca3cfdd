"""Result records → Parquet-ready tables, one per model version plus one for errors."""

from __future__ import annotations

import pyarrow as pa

from modelbus.client.tables import to_ipc_stream
from modelbus.results_batches import ERRORS_DIR, ResultRecord, partition_dir, to_tables


def _ok(cid: str, model: str, version: str, values: list[float]) -> ResultRecord:
    headers = {"correlation_id": cid, "status": "ok", "model": model, "model_version": version}
    return ResultRecord(headers, to_ipc_stream(pa.table({"Predicted": values})))


def test_results_grouped_by_model_version_with_ids_in_front() -> None:
    records = [
        _ok("a", "m", "1", [1.0, 2.0]),
        _ok("b", "m", "1", [3.0]),
        _ok("c", "m", "2", [4.0]),
        ResultRecord(
            {"correlation_id": "d", "status": "error", "model": "m", "error_code": "timeout",
             "error_message": "slow"},
            b'{"error_code": "timeout"}',
        ),
    ]
    tables = to_tables(records)
    assert set(tables) == {"m/v1", "m/v2", ERRORS_DIR}
    v1 = tables["m/v1"]
    assert v1.column_names == ["correlation_id", "model", "model_version", "row_index", "Predicted"]
    assert v1.column("correlation_id").to_pylist() == ["a", "a", "b"]
    assert v1.column("row_index").to_pylist() == [0, 1, 0]
    assert tables[ERRORS_DIR].to_pylist() == [
        {"correlation_id": "d", "model": "m", "model_version": "", "error_code": "timeout",
         "error_message": "slow"}
    ]


def test_unreadable_ok_result_is_recorded_as_an_error() -> None:
    bad = ResultRecord({"correlation_id": "x", "status": "ok", "model": "m"}, b"garbage")
    assert to_tables([bad])[ERRORS_DIR].column("error_code").to_pylist() == ["unreadable_result"]


def test_directory_names_are_safe() -> None:
    assert partition_dir("a b/../c", "3") == "a_b_.._c/v3"
    assert partition_dir("..", "") == "_../v_"
