"""A fast row-wise model, logged from code: ``y = 2a + b`` on two double columns."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class LinearModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pd.DataFrame({"y": 2.0 * model_input["a"] + model_input["b"]})


mlflow.models.set_model(LinearModel())
