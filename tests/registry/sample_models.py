"""Models registered by the registry-side tests: the Datagrok page's sample, made small."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature


class Model(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """The Datagrok documentation's sample shape: column ``Molecule`` in, ``Predicted`` out."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        inputs = model_input["Molecule"].to_list()
        return pd.DataFrame({"Predicted": [float(len(s)) for s in inputs]})


LoggedModel = tuple[str, str, str]  # (model URI, run id, logged model id)


def log_sample_model(tracking_uri: str) -> LoggedModel:
    """Log the sample pyfunc once; returns what ``register`` needs to add versions of it."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment("datagrok_experiment")
        df = pd.DataFrame({"Molecule": ["CCO", "c1ccccc1"]})
        model = Model()
        signature = infer_signature(df, model.predict(None, df))
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="datagrok_model",
                python_model=model,
                signature=signature,
                pip_requirements=["pandas"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri, run.info.run_id, info.model_id


def register(
    client: MlflowClient,
    name: str,
    source: LoggedModel,
    model_tags: dict[str, str] | None = None,
    version_tags: dict[str, str] | None = None,
) -> str:
    """Register a new version of ``name`` from an already logged model; returns its number."""
    try:
        client.create_registered_model(name, tags=model_tags)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    uri, run_id, model_id = source
    mv = client.create_model_version(
        name, uri, run_id=run_id, tags=version_tags, model_id=model_id
    )
    return str(mv.version)
