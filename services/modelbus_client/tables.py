"""Arrow conversions shared by the client and the CLI."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa

from modelbus_contract.arrow_codec import ipc_to_table as from_ipc_stream
from modelbus_contract.arrow_codec import table_to_ipc as to_ipc_stream
from modelbus_contract.tensors import tensor_column

__all__ = ["as_table", "from_ipc_stream", "to_ipc_stream"]


def as_table(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, a pandas DataFrame or a dict of columns (a numpy array
    of two or more dimensions becomes a tensor column: ``fixed_size_list`` rows)."""
    if isinstance(data, pa.Table):
        return data
    pandas = sys.modules.get("pandas")  # pandas is optional: a DataFrame means it is loaded
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, dict):
        return pa.table({name: _column(value) for name, value in data.items()})
    raise TypeError(f"expected a pyarrow Table, a pandas DataFrame or a dict, not {type(data)}")



def _column(value: Any) -> Any:
    if len(getattr(value, "shape", ())) >= 2 and hasattr(value, "reshape"):
        return tensor_column(value)
    return value
