"""MLflow adapter: reads a model version's MLmodel and requirements into ``ModelFacts``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from .entry import ModelFacts

# Registry answers that will not change by asking again.
PERMANENT_ERROR_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class ModelUnreadable(Exception):
    """The version's files are missing or malformed; asking again will not help."""


class MlflowModelReader:
    """Downloads only ``MLmodel`` and ``requirements.txt`` of a registered version."""

    def __init__(self, tracking_uri: str) -> None:
        self._uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def read(self, name: str, version: str) -> ModelFacts:
        """Signature, flavors and requirements; raises ``ModelUnreadable`` or transient errors."""
        try:
            root = self._client.get_model_version_download_uri(name, version).rstrip("/")
        except MlflowException as exc:
            self._raise_if_permanent(exc)
            raise
        with tempfile.TemporaryDirectory(prefix="modelbus-catalog-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{root}/MLmodel", dst_path=tmp, tracking_uri=self._uri
                )
                model = Model.load(path)
            except MlflowException as exc:
                self._raise_if_permanent(exc)
                raise
            except (OSError, ValueError) as exc:
                raise ModelUnreadable(f"cannot read MLmodel: {exc}") from exc
            facts = ModelFacts(
                signature=model.signature.to_dict() if model.signature is not None else None,
                flavors=dict(model.flavors or {}),
            )
            try:
                req = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{root}/requirements.txt", dst_path=tmp, tracking_uri=self._uri
                )
                facts.requirements = _requirement_lines(Path(req).read_text())
            except (MlflowException, OSError) as exc:
                facts.problems.append(f"no readable requirements.txt ({type(exc).__name__})")
        return facts

    @staticmethod
    def _raise_if_permanent(exc: MlflowException) -> None:
        if getattr(exc, "error_code", None) in PERMANENT_ERROR_CODES:
            raise ModelUnreadable(str(exc)[:500]) from exc


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]
