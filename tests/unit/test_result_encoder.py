"""The worker's result encoder: the bytes of ``table_to_ipc(label_outputs(...))``, with the
labelled schema message made once per model version."""

from __future__ import annotations

import pyarrow as pa
import pytest

from modelbus_contract.arrow_codec import table_to_ipc
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_worker.replies import ResultEncoder, label_outputs

RENAMED = CatalogEntry(
    name="m", version="1", status="ready",
    outputs=[Parameter(index=0, name="Predicted", type="double", semtype="Activity")],
)
BY_NAME = CatalogEntry(
    name="m", version="2", status="ready",
    outputs=[Parameter(index=0, name="y", type="double", semtype="Score"),
             Parameter(index=1, name="z", type="double")],
)

TABLES = {
    "one row": pa.table({"0": [1.5]}),
    "many rows, two batches": pa.concat_tables([pa.table({"0": [1.0, 2.0]}),
                                                pa.table({"0": [3.0]})]),
    "no rows": pa.table({"0": pa.array([], pa.float64())}),
    "field metadata": pa.table({"0": [1.0]}).cast(
        pa.schema([pa.field("0", pa.float64(), metadata={b"unit": b"nM"})])),
    "a dictionary column": pa.table({"0": pa.array(["a", "b", "a"]).dictionary_encode()}),
    "a nested column": pa.table({"0": pa.array([{"x": 1}, {"x": 2}])}),
    "more columns than outputs": pa.table({"y": [1.0], "extra": ["e"]}),
}


@pytest.mark.parametrize("entry", [RENAMED, BY_NAME], ids=["renamed", "by name"])
@pytest.mark.parametrize("name", list(TABLES))
def test_the_bytes_are_those_of_the_labelled_table(entry: CatalogEntry, name: str) -> None:
    encoder = ResultEncoder()
    table = TABLES[name]
    expected = table_to_ipc(label_outputs(table, entry.outputs))
    assert encoder.encode(entry, table) == expected
    assert encoder.encode(entry, table) == expected  # the remembered schema message


def test_a_model_that_answers_another_schema_is_labelled_anew() -> None:
    encoder = ResultEncoder()
    first, second = pa.table({"0": [1.0]}), pa.table({"0": pa.array([1], pa.int64())})
    assert encoder.encode(RENAMED, first) == table_to_ipc(label_outputs(first, RENAMED.outputs))
    assert encoder.encode(RENAMED, second) == table_to_ipc(
        label_outputs(second, RENAMED.outputs))


def test_a_changed_catalog_entry_relabels_the_same_version() -> None:
    encoder = ResultEncoder()
    table = pa.table({"0": [1.0]})
    encoder.encode(RENAMED, table)
    retagged = RENAMED.model_copy(update={"outputs": [
        Parameter(index=0, name="pIC50", type="double", semtype="Potency")]})
    got = pa.ipc.open_stream(encoder.encode(retagged, table)).read_all()
    assert got.column_names == ["pIC50"]
    assert got.schema.field("pIC50").metadata == {b"semtype": b"Potency"}


def test_the_oldest_version_makes_room() -> None:
    encoder = ResultEncoder(max_versions=2)
    table = pa.table({"0": [1.0]})
    versions = [RENAMED.model_copy(update={"version": str(v)}) for v in range(3)]
    for entry in versions:
        encoder.encode(entry, table)
    assert encoder.versions == [("m", "1"), ("m", "2")]
    assert encoder.encode(versions[0], table) == table_to_ipc(label_outputs(table, RENAMED.outputs))
