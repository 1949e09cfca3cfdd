"""A pyfunc model logged from code that cannot load inside the model image."""

from __future__ import annotations

import os
from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel

if os.path.isdir("/opt/modelbus"):  # only inside a modelbus model image
    raise RuntimeError("weights file is missing")


class BrokenModel(PythonModel):
    """Loads on the host (so it can be logged), fails to load in its container."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input


mlflow.models.set_model(BrokenModel())
