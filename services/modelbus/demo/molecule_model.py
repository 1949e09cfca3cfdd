"""The Datagrok page's sample model, made real: SMILES in (``Molecule``), a score out.

Logged as an MLflow "model from code": this file is copied into the model and executed
on load, so the container needs only RDKit, pandas and MLflow, not modelbus.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

# A fixed linear model over RDKit descriptors (an illustrative solubility-like score,
# in the spirit of ESOL): weights chosen once, no training data needed.
WEIGHTS = {"MolLogP": -0.74, "MolWt": -0.0066, "NumRotatableBonds": 0.0034, "TPSA": 0.01}
INTERCEPT = 0.16


class MoleculeModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Input column ``Molecule`` (SMILES), output column ``Predicted`` (NaN if unparsable)."""

    def load_context(self, context: Any) -> None:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Descriptors

        RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
        self._chem = Chem
        self._descriptors = {name: getattr(Descriptors, name) for name in WEIGHTS}

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if not hasattr(self, "_chem"):
            self.load_context(context)
        scores = []
        for smiles in model_input["Molecule"].astype(str):
            mol = self._chem.MolFromSmiles(smiles)
            if mol is None:
                scores.append(float("nan"))
                continue
            scores.append(
                INTERCEPT + sum(w * self._descriptors[n](mol) for n, w in WEIGHTS.items())
            )
        return pd.DataFrame({"Predicted": scores})


mlflow.models.set_model(MoleculeModel())
