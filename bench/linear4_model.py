"""The large-table bench's model, logged from code: ``y = a + 2b + 3c + 4d`` on four doubles."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class Linear4Model(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        x = model_input
        return pd.DataFrame({"y": x["a"] + 2.0 * x["b"] + 3.0 * x["c"] + 4.0 * x["d"]})


mlflow.models.set_model(Linear4Model())
