"""A tiny pyfunc model logged from code: doubles ``x`` and echoes ``label`` upper-cased."""

from __future__ import annotations

import time
from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class ScaleModel(PythonModel):
    """``y = 2 * x`` and ``label_upper``; raises when ``x`` holds a negative number.

    A label ``__sleep__`` makes it hang for a while (to test request timeouts).
    """

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        if (model_input["x"] < 0).any():
            raise ValueError("negative x is not allowed")
        if (model_input["label"] == "__sleep__").any():
            time.sleep(30)
        return pd.DataFrame(
            {"y": model_input["x"] * 2.0, "label_upper": model_input["label"].str.upper()}
        )


mlflow.models.set_model(ScaleModel())
