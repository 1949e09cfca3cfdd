"""The scale-out bench's model, logged from code: ``y = x``, about 20 ms per call whatever
the rows (a sleep, not CPU), so a worker's container answers about 50 calls a second."""

from __future__ import annotations

import time
from typing import Any

import mlflow
import pandas as pd


class SleepyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        time.sleep(0.02)
        return pd.DataFrame({"y": model_input["x"]})


mlflow.models.set_model(SleepyModel())
