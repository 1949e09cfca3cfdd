"""A pyfunc model whose ``load_context`` takes 75 s (large weights, say): ``y = 2 * x``."""

from __future__ import annotations

import time
from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel

LOAD_S = 75.0


class SlowPrepareModel(PythonModel):
    def load_context(self, context: Any) -> None:
        time.sleep(LOAD_S)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return pd.DataFrame({"y": model_input["x"] * 2.0})


mlflow.models.set_model(SlowPrepareModel())
