"""A tiny pyfunc model logged from code returning an unnamed numpy array (sum of columns)."""

from __future__ import annotations

from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class SumModel(PythonModel):
    """Row sums of the numeric inputs, as a bare 1-D array."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input.select_dtypes("number").sum(axis=1).to_numpy()


mlflow.models.set_model(SumModel())
