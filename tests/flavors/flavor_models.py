"""Models of every flavor a Datagrok user logs, each logged with MLflow's own API and
registered with the ``datagrok`` tag under a name of its own."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.models import infer_signature

MODEL_CODE = Path(__file__).parent / "model_code"
X = pd.DataFrame({"a": [0.5, 1.0, 2.0, -3.0], "b": [1.0, 0.0, 4.0, 2.5]})
Y = 2.0 * X["a"] + X["b"]


def pinned(*packages: str) -> list[str]:
    """``name==version`` of the packages installed here (the container installs the same)."""
    return [f"{p}=={version(p)}" for p in packages]


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def register(uri: str, stem: str, model_uri: str, run_id: str | None,
             tags: dict[str, str] | None = None, model_id: str | None = None) -> tuple[str, str]:
    """A new registered model ``stem-<uuid>`` tagged ``datagrok`` with one version."""
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name, tags={"datagrok": "", **(tags or {})})
    mv = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
    return name, str(mv.version)


def logged(uri: str, stem: str, log: Callable[[], Any],
           tags: dict[str, str] | None = None) -> tuple[str, str]:
    """Run ``log`` (an MLflow ``log_model`` call) in a run of its own and register it."""
    with tracking(uri), mlflow.start_run(run_name=stem) as run:
        info = log()
    return register(uri, stem, info.model_uri, run.info.run_id, tags, info.model_id)


def linear_sklearn(uri: str, with_signature: bool = True,
                   tags: dict[str, str] | None = None) -> tuple[str, str]:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, Y)
    signature = infer_signature(X, model.predict(X)) if with_signature else None
    # Requirements as MLflow infers them, as a user who names none gets them.
    return logged(uri, "flavor-sklearn", lambda: mlflow.sklearn.log_model(
        model, name="model", signature=signature), tags)


def lightgbm_regressor(uri: str) -> tuple[str, str, Any]:
    import lightgbm

    rng = np.random.default_rng(7)
    features = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    model = lightgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1)
    model.fit(features, 2.0 * features["a"] + features["b"])
    name, ver = logged(uri, "flavor-lightgbm", lambda: mlflow.lightgbm.log_model(
        model, name="model", signature=infer_signature(X, model.predict(X))))
    return name, ver, model


def code_paths_model(uri: str) -> tuple[str, str]:
    sample = pd.DataFrame({"x": [1.0, 2.0]})
    return logged(uri, "flavor-code-paths", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=str(MODEL_CODE / "scaled_model.py"),
        code_paths=[str(MODEL_CODE / "scale_helper.py")],
        signature=infer_signature(sample, pd.DataFrame({"y": [4.0, 7.0]})),
        pip_requirements=pinned("pandas", "mlflow")))


def slow_loading_model(uri: str) -> tuple[str, str]:
    """A model from code that takes 4 s to load."""
    sample = pd.DataFrame({"x": [1.0]})
    code = Path(__file__).parents[1] / "containers" / "models" / "slow_load_model.py"
    return logged(uri, "flavor-slow-load", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=str(code),
        signature=infer_signature(sample, pd.DataFrame({"y": [2.0]})),
        pip_requirements=pinned("pandas", "mlflow")))


class VersionReporter(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """Answers ``y = 2a + b`` and the Python it runs under (pickled by value: its code
    objects are those of the Python that logged it)."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        import platform

        return pd.DataFrame({
            "y": 2.0 * model_input["a"] + model_input["b"],
            "python": [platform.python_version()] * len(model_input),
        })


def python_model(uri: str, stem: str = "flavor-pymodel",
                 logged_with: str | None = None) -> tuple[str, str]:
    """The reporter, cloudpickled here; ``logged_with`` rewrites the Python version its
    files record (what a model logged from that Python carries)."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with tempfile.TemporaryDirectory(prefix="flavor-") as tmp:
            path = Path(tmp, "model")
            mlflow.pyfunc.save_model(
                str(path), python_model=VersionReporter(),
                signature=infer_signature(X, VersionReporter().predict(None, X)),
                pip_requirements=pinned("pandas", "mlflow", "cloudpickle"))
            if logged_with is not None:
                record_python(path, logged_with)
            return artifacts_model(uri, stem, path)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def record_python(model_dir: Path, python: str) -> None:
    """Make the files say they were logged with ``python`` (MLmodel and python_env.yaml)."""
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["python_version"] = python
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    env = yaml.safe_load((model_dir / "python_env.yaml").read_text())
    env["python"] = python
    (model_dir / "python_env.yaml").write_text(yaml.safe_dump(env))


def artifacts_model(uri: str, stem: str, model_dir: Path,
                    tags: dict[str, str] | None = None) -> tuple[str, str]:
    """Upload a saved model directory as a run's artifacts and register it."""
    with tracking(uri), mlflow.start_run(run_name=stem) as run:
        mlflow.log_artifacts(str(model_dir), "model")
    return register(uri, stem, f"runs:/{run.info.run_id}/model", run.info.run_id, tags)


def sklearn_logged_with(uri: str, python: str) -> tuple[str, str]:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, Y)
    with tempfile.TemporaryDirectory(prefix="flavor-") as tmp:
        path = Path(tmp, "model")
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, Y.to_numpy()))
        record_python(path, python)
        return artifacts_model(uri, "flavor-sklearn-py", path)
