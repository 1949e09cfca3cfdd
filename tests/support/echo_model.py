"""An echo pyfunc model (answers its input), logged from code and tagged for discovery."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

FRAME = pd.DataFrame({"x": [1.0, 2.0]})
_MODEL_CODE = '''
import mlflow.models
from mlflow.pyfunc.model import PythonModel


class Echo(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Echo())
'''


def register_echo_model(tracking_uri: str, name: str, work_dir: Path) -> None:
    """Version 1 of ``name``: an echo pyfunc logged from code, tagged for discovery."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name, tags={"datagrok": "true"})
    experiment_id = client.create_experiment(f"{name}-experiment")
    code = work_dir / f"{name}.py"
    code.write_text(_MODEL_CODE)
    model_dir = work_dir / name
    mlflow.pyfunc.save_model(
        str(model_dir), python_model=str(code),
        signature=infer_signature(FRAME, FRAME), pip_requirements=["pandas"],
    )
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
