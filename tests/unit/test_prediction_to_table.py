"""The fast conversion of plain numeric predictions equals pyarrow's own from_pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelbus_worker.runtime.arrow_io import prediction_to_table

FRAMES = {
    "floats with NaN": pd.DataFrame({"y": [1.5, np.nan, -0.0]}),
    "mixed numeric and bool": pd.DataFrame(
        {"f": np.array([1, 2], np.float32), "i": [1, -2], "u": np.array([1, 2], np.uint16),
         "b": [True, False]}
    ),
    "non-string column names": pd.DataFrame({0: [1.0], 1: [2.0]}),
    "strings (slow path)": pd.DataFrame({"s": ["a", None]}),
    "nullable extension ints (slow path)": pd.DataFrame({"i": pd.array([1, None], "Int64")}),
    "one row": pd.DataFrame({"y": [4.0]}),
    "no rows": pd.DataFrame({"y": np.array([], np.float64)}),
}


@pytest.mark.parametrize("frame", FRAMES.values(), ids=FRAMES.keys())
def test_same_table_as_from_pandas(frame: pd.DataFrame) -> None:
    named = frame.set_axis([str(c) for c in frame.columns], axis=1)
    expected = pa.Table.from_pandas(named, preserve_index=False)
    got = prediction_to_table(frame)
    assert got.schema.remove_metadata() == expected.schema.remove_metadata()
    assert got.to_pydict() == expected.to_pydict()
    assert [c.null_count for c in got.columns] == [c.null_count for c in expected.columns]


def test_duplicate_column_names_are_left_to_pyarrow() -> None:
    frame = pd.DataFrame([[1.0, 2.0]], columns=["y", "y"])
    with pytest.raises(ValueError):
        prediction_to_table(frame)
