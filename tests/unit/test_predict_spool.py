"""The parts directory of a file prediction: what a later run may continue from."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from modelbus_client.cli.predict_spool import MANIFEST, JobIdentity, Spool, SpoolMismatch


def _identity(tmp_path: Path, model: str = "m") -> JobIdentity:
    source = tmp_path / "in.parquet"
    if not source.exists():
        source.write_bytes(b"input")
    return JobIdentity.of(source, model, None)


def _spool(tmp_path: Path) -> Spool:
    out = tmp_path / "out.parquet"
    return Spool.create(Spool.beside(out), _identity(tmp_path), "job-1", 100, 1000)


def test_a_new_spool_is_continued_with_its_parts_and_pinned_version(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.pin("3")
    spool.save_part(0, 0, 100, pa.table({"y": [1.0] * 100}))
    spool.save_part(2, 200, 100, pa.table({"y": [2.0] * 100}))
    again = Spool.load(spool.directory, _identity(tmp_path))
    assert again is not None
    assert (again.chunk_id, again.rows_per_chunk, again.total_rows) == ("job-1", 100, 1000)
    assert again.pinned_version == "3"
    assert sorted(again.done) == [0, 2]
    assert again.done_rows == 200
    assert again.read_part(2).column("y").to_pylist() == [2.0] * 100


def test_nothing_to_continue_without_a_manifest(tmp_path: Path) -> None:
    assert Spool.load(tmp_path / "none.parts", _identity(tmp_path)) is None


def test_a_torn_last_line_and_a_missing_part_are_not_done(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for index in range(3):
        spool.save_part(index, index * 100, 100, pa.table({"y": [0.0] * 100}))
    spool.part_path(1).unlink()
    with (spool.directory / MANIFEST).open("a") as f:
        f.write('{"kind": "done", "index": 3, "st')  # killed while writing
    again = Spool.load(spool.directory, _identity(tmp_path))
    assert again is not None and sorted(again.done) == [0, 2]


def test_another_input_or_model_is_refused(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    with pytest.raises(SpoolMismatch, match="model"):
        Spool.load(spool.directory, _identity(tmp_path, model="other"))
    (tmp_path / "in.parquet").write_bytes(b"changed input")
    with pytest.raises(SpoolMismatch, match="input's size"):
        Spool.load(spool.directory, _identity(tmp_path))


def test_creating_replaces_an_old_spool_and_remove_deletes_it(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.save_part(0, 0, 100, pa.table({"y": [0.0] * 100}))
    fresh = _spool(tmp_path)
    assert fresh.done == {} and not fresh.part_path(0).exists()
    fresh.remove()
    assert not fresh.directory.exists()
