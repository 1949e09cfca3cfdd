"""A test model (logged from code) that misbehaves on request: raises, sleeps, or bloats.

``Molecule`` values: ``boom`` → raises; ``sleep:S`` → sleeps S seconds; ``big:N`` → an
N-character output; anything else → its length as text. A table holding ``collapse``
is answered with one row, its row count (a model that is not row-wise).
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import pandas as pd


class TrickyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if (model_input["Molecule"].astype(str) == "collapse").any():
            return pd.DataFrame({"Predicted": [str(len(model_input))]})
        out = []
        for value in model_input["Molecule"].astype(str):
            if value == "boom":
                raise ValueError("boom: the model refused this input")
            if value.startswith("sleep:"):
                time.sleep(float(value.split(":", 1)[1]))
            if value.startswith("big:"):
                out.append("x" * int(value.split(":", 1)[1]))
            else:
                out.append(str(len(value)))
        return pd.DataFrame({"Predicted": out})


mlflow.models.set_model(TrickyModel())
