"""A test model (logged from code) with two named tensor inputs and a 3-D tensor output.

``a``: float64 ``[-1, 3]``; ``b``: float32 ``[-1, 2, 2]``. The output (float64
``[-1, 2, 3]``) is, row by row, the outer product of ``b``'s row sums and ``a``.
"""

from __future__ import annotations

import mlflow
import numpy as np


class TwoTensorModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    # No type hints on the input and the result: MLflow would infer a signature from them.
    def predict(self, context, model_input, params=None):
        if not isinstance(model_input, dict):
            raise TypeError(f"expected a dict of arrays, got {type(model_input).__name__}")
        a, b = model_input["a"], model_input["b"]
        if a.dtype != np.float64 or b.dtype != np.float32 or b.shape[1:] != (2, 2):
            raise TypeError(f"unexpected tensors: a {a.dtype}{a.shape}, b {b.dtype}{b.shape}")
        return np.einsum("ri,rj->rij", b.sum(axis=2).astype(np.float64), a)


mlflow.models.set_model(TwoTensorModel())
