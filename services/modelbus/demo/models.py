"""Logging and registering the two demo models in an MLflow registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

MOLECULE_MODEL = "demo-molecule-score"
IRIS_MODEL = "demo-iris-species"
SAMPLE_SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "not-a-molecule"]


@dataclass(frozen=True)
class DemoModel:
    """A registered demo model version and an input to call it with."""

    name: str
    version: str
    sample: pd.DataFrame


def _versions(package: str) -> str:
    from importlib.metadata import version

    return f"{package}=={version(package)}"


def log_molecule_model(client: MlflowClient) -> DemoModel:
    """RDKit descriptors → score; input ``Molecule`` (semtype Molecule), output ``Predicted``."""
    sample = pd.DataFrame({"Molecule": SAMPLE_SMILES})
    from .molecule_model import MoleculeModel

    model = MoleculeModel()
    model.load_context(None)
    signature = infer_signature(sample, model.predict(None, sample))
    with mlflow.start_run(run_name="demo-molecule"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("molecule_model.py")),
            signature=signature,
            pip_requirements=[_versions("rdkit"), _versions("pandas"), _versions("mlflow")],
        )
    version = _register(client, MOLECULE_MODEL, info, {
        "datagrok": "",
        "datagrok-inputs-0-semtype": "Molecule",
        "datagrok-outputs-0-semtype": "Score",
    })
    return DemoModel(MOLECULE_MODEL, version, sample)


def log_iris_model(client: MlflowClient) -> DemoModel:
    """scikit-learn logistic regression on the iris data set bundled with scikit-learn."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    features = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(features, iris.target)
    sample = features.iloc[[0, 60, 120]].reset_index(drop=True)
    signature = infer_signature(features, model.predict(features))
    with mlflow.start_run(run_name="demo-iris"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=[
                _versions("scikit-learn"), _versions("pandas"), _versions("numpy"),
                _versions("scipy"), _versions("mlflow"),
                _versions("skops"),  # MLflow stores scikit-learn models with skops
            ],
        )
    version = _register(client, IRIS_MODEL, info, {
        "datagrok": "",
        "datagrok-outputs-0-name": "species",
        "datagrok-outputs-0-semtype": "IrisSpecies",
    })
    return DemoModel(IRIS_MODEL, version, sample)


def _register(
    client: MlflowClient, name: str, info: mlflow.models.model.ModelInfo, tags: dict[str, str]
) -> str:
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    for key, value in tags.items():
        client.set_registered_model_tag(name, key, value)
    mv = client.create_model_version(
        name, info.model_uri, run_id=info.run_id, model_id=info.model_id
    )
    return str(mv.version)
