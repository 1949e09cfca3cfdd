"""A model logged from code whose predict uses a module shipped through ``code_paths``."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class ScaledModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        # On the model's code path where it is served (not where it is logged).
        from scale_helper import scale  # type: ignore[import-not-found]

        return pd.DataFrame({"y": [scale(float(x)) for x in model_input["x"]]})


mlflow.models.set_model(ScaledModel())
