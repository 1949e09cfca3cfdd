"""What a prediction answered: the table and who answered it (pure, pandas optional).

``Prediction`` is what ``predict_answer`` returns: the output table, the model and the
version that answered (the worker resolves ``None`` or an ``@alias`` to a number), the
request's correlation id and every header of the result. pandas is imported only when a
DataFrame is asked for, with a line naming the extra when it is not installed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

PANDAS_MISSING = "{what} needs pandas, which is not installed: pip install 'modelbus[pandas]'"


@dataclass(frozen=True)
class Prediction:
    """An ``ok`` answer: ``table`` and the ``model``/``model_version`` that answered it.

    ``correlation_id`` is the request's (given or generated); ``headers`` are all of the
    result's headers (``request_partition``, ``request_offset``, ``traceparent``, ...).
    """

    table: pa.Table
    model: str
    model_version: str
    correlation_id: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, headers: Mapping[str, str], table: pa.Table, model: str,
           correlation_id: str) -> Prediction:
        """From a result's headers (the worker's ``model``/``correlation_id`` when present)."""
        return cls(
            table,
            headers.get("model") or model,
            headers.get("model_version", ""),
            headers.get("correlation_id") or correlation_id,
            dict(headers),
        )

    def to_pandas(self) -> pd.DataFrame:
        """The table as a pandas DataFrame (needs pandas)."""
        return to_dataframe(self.table, what="Prediction.to_pandas")


def require_pandas(what: str) -> Any:
    """The pandas module; ImportError naming the extra when it is not installed."""
    try:
        import pandas
    except ImportError:
        raise ImportError(PANDAS_MISSING.format(what=what)) from None
    return pandas


def input_index(data: Any) -> Any | None:
    """The index of a pandas DataFrame (None for anything else), without importing pandas."""
    pandas = sys.modules.get("pandas")  # a DataFrame means pandas is loaded
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return data.index
    return None


def to_dataframe(table: pa.Table, index: Any | None = None, *,
                 what: str = "predict_df") -> pd.DataFrame:
    """``table`` as a DataFrame; with the input's ``index`` when the row counts agree (each
    answer row stands for the input row at the same position)."""
    require_pandas(what)
    frame: pd.DataFrame = table.to_pandas()
    if index is not None and len(index) == len(frame):
        frame.index = index
    return frame
