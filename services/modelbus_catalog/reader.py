"""MLflow adapter: reads a model version's MLmodel and requirements into ``ModelFacts``.

What MLflow and its HTTP client raise is translated here, by type, into the catalog's
errors (``errors.py``): a registry that cannot be reached or refuses the credentials is
``RegistryUnreachable``, a version whose files will never read is ``ModelUnreadable``;
anything else goes on as it is (the service gives up on it after a few tries).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow.artifacts
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from .entry import ModelFacts
from .errors import ModelUnreadable, RegistryUnreachable

__all__ = ["MlflowModelReader", "ModelUnreadable", "RegistryUnreachable", "registry_error"]

# Registry answers that will not change by asking again.
PERMANENT_ERROR_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE",
                                   "NOT_FOUND"})
# HTTP statuses of a registry that refuses the credentials or cannot answer now.
UNAVAILABLE_STATUSES = frozenset({401, 403, 429, 502, 503, 504})
# A server that cannot be reached, or answers too late. MLflow raises its own
# MlflowException for these with the HTTP client's error as the cause or the context.
_UNREACHABLE = (
    requests.exceptions.ConnectionError,  # refused, reset, DNS, TLS, proxy
    requests.exceptions.Timeout,
    requests.exceptions.RetryError,  # the HTTP client's retries on 429/5xx used up
    ConnectionError,
    TimeoutError,
)


class MlflowModelReader:
    """Downloads only ``MLmodel`` and ``requirements.txt`` of a registered version."""

    def __init__(self, tracking_uri: str) -> None:
        self._uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def read(self, name: str, version: str) -> ModelFacts:
        """Signature, flavors and requirements; raises ``ModelUnreadable``,
        ``RegistryUnreachable`` or, for anything else, what MLflow raised."""
        try:
            return self._read(name, version)
        except (ModelUnreadable, RegistryUnreachable):
            raise
        except Exception as exc:
            translated = registry_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _read(self, name: str, version: str) -> ModelFacts:
        root = self._client.get_model_version_download_uri(name, version).rstrip("/")
        with tempfile.TemporaryDirectory(prefix="modelbus-catalog-") as tmp:
            model = self._mlmodel(root, tmp)
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
                if is_unreachable(exc):
                    raise
                facts.problems.append(f"no readable requirements.txt ({type(exc).__name__})")
        return facts

    def _mlmodel(self, root: str, tmp: str) -> Model:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{root}/MLmodel", dst_path=tmp, tracking_uri=self._uri
            )
            return Model.load(path)
        except (OSError, ValueError) as exc:
            if is_unreachable(exc):
                raise
            raise ModelUnreadable(f"cannot read MLmodel: {exc}") from exc


def registry_error(exc: Exception) -> Exception:
    """``exc`` in the catalog's terms: ``RegistryUnreachable``, ``ModelUnreadable``, or
    ``exc`` itself when it is neither."""
    if is_unreachable(exc):
        return RegistryUnreachable(f"{type(exc).__name__}: {exc}"[:500])
    if isinstance(exc, MlflowException) and exc.error_code in PERMANENT_ERROR_CODES:
        return ModelUnreadable(str(exc)[:500])
    return exc


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc``, or what it was raised from or while handling, says the registry
    cannot be reached now or refuses the credentials."""
    for cause in _chain(exc):
        if isinstance(cause, _UNREACHABLE):
            return True
        if isinstance(cause, MlflowException):
            # The status MLflow's error code stands for (its own mapping; 500 if none).
            status = cause.get_http_status_code()  # type: ignore[no-untyped-call]
            if status in UNAVAILABLE_STATUSES:
                return True
        elif isinstance(cause, requests.exceptions.HTTPError):
            response = cause.response
            if response is not None and response.status_code in UNAVAILABLE_STATUSES:
                return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from (or while handling), and so on."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]
