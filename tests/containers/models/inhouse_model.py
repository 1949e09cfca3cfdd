"""A pyfunc model that needs an in-house package (``inhouse-scale``, from a private index)."""

from __future__ import annotations

from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class InhouseModel(PythonModel):
    """``y = inhouse_scale.scale(x)``: the package is imported where the model runs."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        from inhouse_scale import scale

        return pd.DataFrame({"y": [scale(float(x)) for x in model_input["x"]]})


mlflow.models.set_model(InhouseModel())
