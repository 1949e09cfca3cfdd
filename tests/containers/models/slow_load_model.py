"""A pyfunc model logged from code that takes a few seconds to load (a slow cold start)."""

from __future__ import annotations

import time
from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel

time.sleep(4.0)  # stands in for loading large weights


class SlowLoadModel(PythonModel):
    """Returns ``x + 1`` once loaded."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return pd.DataFrame({"y": model_input["x"] + 1.0})


mlflow.models.set_model(SlowLoadModel())
