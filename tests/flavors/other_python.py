"""Logging a model from another Python: inside a container of that interpreter's runtime
image (the one the worker builds for it), so its files are exactly what that Python writes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from modelbus_worker.images.interpreter import Interpreter
from modelbus_worker.images.runtime_image import runtime_image_for
from modelbus_worker.settings import ContainerSettings

from .flavor_models import artifacts_model, pinned

REQUIREMENTS = pinned("mlflow", "pandas", "pyarrow", "cloudpickle")

SAVE_SCRIPT = """
import json, sys
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema


class VersionReporter(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        import platform

        return pd.DataFrame({
            "y": 2.0 * model_input["a"] + model_input["b"],
            "python": [platform.python_version()] * len(model_input),
        })


signature = ModelSignature(
    Schema([ColSpec("double", "a"), ColSpec("double", "b")]),
    Schema([ColSpec("double", "y"), ColSpec("string", "python")]),
)
mlflow.pyfunc.save_model(
    "/out/model", python_model=VersionReporter(), signature=signature,
    pip_requirements=json.loads(sys.argv[1]),
)
"""


def python_model_logged_under(
    docker_client: Any, interpreter: Interpreter, uri: str, stem: str
) -> tuple[str, str]:
    """A cloudpickled PythonModel saved by ``interpreter``'s Python, registered."""
    image = runtime_image_for(docker_client, ContainerSettings(), REQUIREMENTS,
                              interpreter=interpreter)
    with tempfile.TemporaryDirectory(prefix="other-python-") as tmp:
        out = Path(tmp)
        out.chmod(0o777)  # the image's user writes the model here
        docker_client.containers.run(
            image, ["-c", SAVE_SCRIPT, json.dumps(REQUIREMENTS)],
            entrypoint=["/opt/venv/bin/python"], network_mode="none", remove=True,
            environment={"HOME": "/tmp"}, volumes={str(out): {"bind": "/out", "mode": "rw"}},
        )
        return artifacts_model(uri, stem, out / "model")
