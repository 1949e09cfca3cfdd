"""Arrow IPC bytes <-> tables, and any pyfunc prediction -> an Arrow table.

Standalone (pyarrow, pandas, numpy and the contract's Arrow codec, which the model image
ships beside the runtime): the runtime uses it inside the container and the host uses the
same conversion to compare results with an in-process prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from modelbus_contract.arrow_codec import ipc_to_table, table_to_ipc

__all__ = ["ipc_to_table", "prediction_to_table", "table_to_ipc"]

DEFAULT_OUTPUT_NAME = "prediction"


def prediction_to_table(prediction: Any) -> pa.Table:
    """Whatever ``pyfunc.predict`` returned, as a table with string column names.

    Unnamed outputs are called ``prediction`` (or ``prediction_<i>`` for the columns
    of a 2-D array).
    """
    if isinstance(prediction, pa.Table):
        return prediction
    if isinstance(prediction, pd.DataFrame):
        fast = _plain_numeric(prediction)
        if fast is not None:
            return fast
        frame = prediction.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False)
    if isinstance(prediction, pd.Series):
        name = DEFAULT_OUTPUT_NAME if prediction.name is None else str(prediction.name)
        return pa.Table.from_pandas(prediction.to_frame(name), preserve_index=False)
    if isinstance(prediction, dict):
        values = {str(k): v if np.ndim(v) else [v] for k, v in prediction.items()}
        return prediction_to_table(pd.DataFrame(values))
    if isinstance(prediction, list | tuple):
        try:
            prediction = np.asarray(prediction)
        except ValueError:  # ragged
            return pa.table({DEFAULT_OUTPUT_NAME: pa.array(list(prediction))})
    if isinstance(prediction, np.ndarray):
        return _array_to_table(prediction)
    return pa.table({DEFAULT_OUTPUT_NAME: pa.array([prediction])})


def _plain_numeric(frame: pd.DataFrame) -> pa.Table | None:
    """A frame of bool/int/float numpy columns with distinct names, converted column by
    column (what ``Table.from_pandas`` yields, NaN as null, at a fraction of its cost for
    the small frames of single requests); None for anything else."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        return None
    columns = []
    for dtype, (_, series) in zip(frame.dtypes, frame.items(), strict=True):
        if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
            return None
        columns.append(pa.array(series.to_numpy(), from_pandas=True))
    return pa.Table.from_arrays(columns, names=names)


def _array_to_table(array: np.ndarray[Any, Any]) -> pa.Table:
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        return pa.table({DEFAULT_OUTPUT_NAME: _column(array)})
    if array.ndim == 2 and array.shape[1] == 1:
        return pa.table({DEFAULT_OUTPUT_NAME: _column(array[:, 0])})
    if array.ndim == 2:
        return pa.table(
            {f"{DEFAULT_OUTPUT_NAME}_{i}": _column(array[:, i]) for i in range(array.shape[1])}
        )
    return pa.table({DEFAULT_OUTPUT_NAME: pa.array(array.tolist())})


def _column(array: np.ndarray[Any, Any]) -> pa.Array:
    if array.dtype == object:
        return pa.array(array.tolist())
    return pa.array(array)
