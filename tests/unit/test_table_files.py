"""Table files read batch by batch (without loading them whole) and written by suffix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from modelbus_client.cli.table_files import TableFileError, open_batches, open_writer

TABLE = pa.table({"a": pa.array(range(1000), pa.float64()), "s": [f"r{i}" for i in range(1000)]})


def _write(path: Path) -> None:
    suffix = path.suffix
    if suffix == ".parquet":
        pq.write_table(TABLE, path, row_group_size=300)  # 4 row groups
    elif suffix == ".csv":
        pacsv.write_csv(TABLE, path)
    elif path.name.endswith(".stream.arrow"):
        with pa.ipc.new_stream(str(path), TABLE.schema) as writer:
            writer.write_table(TABLE, max_chunksize=128)
    else:
        with pa.ipc.new_file(str(path), TABLE.schema) as writer:
            writer.write_table(TABLE, max_chunksize=128)


@pytest.mark.parametrize("name", ["in.parquet", "in.csv", "in.stream.arrow", "in.file.arrow"])
def test_every_kind_of_file_is_read_whole_and_in_order(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _write(path)
    source = open_batches(path)
    batches = list(source.batches(250))
    assert pa.Table.from_batches(batches).cast(TABLE.schema).equals(TABLE)
    assert source.total_rows == (None if name.endswith(("csv", "stream.arrow")) else 1000)
    assert list(source.batches(250))  # and again, from the start


def test_parquet_is_read_a_row_group_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    _write(path)
    sizes = [b.num_rows for b in open_batches(path).batches(250)]
    assert sizes == [250, 50, 250, 50, 250, 50, 100]  # never across a row group


def test_unreadable_and_unknown_files_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(TableFileError, match="no such file"):
        open_batches(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(TableFileError, match="cannot read"):
        open_batches(bad)
    other = tmp_path / "in.txt"
    other.write_text("x")
    with pytest.raises(TableFileError, match="unsupported input"):
        open_batches(other)


@pytest.mark.parametrize("name", ["out.parquet", "out.csv", "out.arrow"])
def test_writers_write_what_readers_read(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    writer = open_writer(path, TABLE.schema)
    writer.write_table(TABLE.slice(0, 400))
    writer.write_table(TABLE.slice(400))
    writer.close()
    back = pa.Table.from_batches(list(open_batches(path).batches(1000)))
    assert back.cast(TABLE.schema).equals(TABLE)
    with pytest.raises(TableFileError, match="unsupported output"):
        open_writer(tmp_path / "out.json", TABLE.schema)
