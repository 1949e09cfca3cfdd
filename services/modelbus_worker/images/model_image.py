"""Per-model-version images: the dependency-set image plus /model and the runtime."""

from __future__ import annotations

import hashlib
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbus_contract.errors import InternalError, ModelNotFound
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.base import ensure_base_image
from modelbus_worker.images.depset import ensure_depset_image
from modelbus_worker.images.docker_build import build_image, image_exists
from modelbus_worker.images.requirements import model_tag
from modelbus_worker.pool.settings import ContainerSettings

log = get_logger("modelbus_worker.images.model")

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
RUNTIME_FILES = ("__init__.py", "protocol.py", "arrow_io.py", "server.py")
# The contract's Arrow codec runs in the container too (it needs only pyarrow).
CODEC_FILE = Path(__file__).resolve().parents[2] / "modelbus_contract" / "arrow_codec.py"
LABEL_NAME = "modelbus.model.name"
LABEL_VERSION = "modelbus.model.version"

MODEL_DOCKERFILE = """\
FROM {depset}
COPY --chown=0:0 runtime /opt/modelbus/modelbus_worker
COPY --chown=0:0 contract /opt/modelbus/modelbus_contract
COPY --chown=0:0 model /model
ENV PYTHONPATH=/opt/modelbus
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/python", "-m", "modelbus_worker.runtime.server"]
CMD ["--model", "/model", "--socket", "/sock/model.sock"]
"""


@dataclass
class ModelImage:
    """A built (or reused) image of one model version and how long getting it took."""

    tag: str
    name: str
    version: str
    built: bool
    timings: dict[str, float] = field(default_factory=dict)


def runtime_digest() -> str:
    """Hash of the runtime sources, so a changed runtime yields new model images."""
    digest = hashlib.sha256()
    for name in RUNTIME_FILES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    digest.update(CODEC_FILE.read_bytes())
    return digest.hexdigest()[:12]


def ensure_model_image(
    client: Any,
    settings: ContainerSettings,
    name: str,
    version: str,
    tracking_uri: str,
    build_lock: AbstractContextManager[Any] | None = None,
) -> ModelImage:
    """The image for ``name``/``version``: reused when present, otherwise built.

    ``build_lock`` is held only while building, so finding a cached image never waits.
    """
    import mlflow.exceptions
    from mlflow import MlflowClient

    started = time.monotonic()
    mlflow_client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = mlflow_client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(f"model {name} version {version}: {exc.message}") from exc
        raise InternalError(
            f"cannot read {name}/{version} from the registry at {tracking_uri}: {exc.message}"
        ) from exc
    source_key = "|".join([name, str(version), str(mv.source), str(mv.run_id),
                           str(mv.creation_timestamp), runtime_digest()])
    tag = model_tag(name, str(version), source_key)
    if image_exists(client, tag):
        return ModelImage(tag, name, version, built=False,
                          timings={"lookup_s": round(time.monotonic() - started, 3)})
    with build_lock or nullcontext():
        if image_exists(client, tag):  # built by someone else while we waited
            return ModelImage(tag, name, version, built=False)
        return _build(client, settings, name, version, tracking_uri, tag, started)


def _build(
    client: Any, settings: ContainerSettings, name: str, version: str, tracking_uri: str,
    tag: str, started: float,
) -> ModelImage:
    import mlflow.artifacts
    import mlflow.pyfunc

    timings: dict[str, float] = {}
    base = ensure_base_image(client, settings)
    timings["base_s"] = round(time.monotonic() - started, 3)
    context = settings.build_root / f"model-{tag.rsplit(':', 1)[1]}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    try:
        mark = time.monotonic()
        # Resolve the version's artifact location through this registry explicitly: a
        # ``models:/`` URI would be resolved against the process-wide registry URI.
        from mlflow import MlflowClient

        location = MlflowClient(
            tracking_uri=tracking_uri, registry_uri=tracking_uri
        ).get_model_version_download_uri(name, version)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(context / "download"), tracking_uri=tracking_uri,
        )
        # The download lands below its location's last path element: move the model root
        # (the directory holding MLmodel) to where the Dockerfile copies it from.
        model_dir = str(shutil.move(downloaded, context / "model"))
        requirements_file = mlflow.pyfunc.get_model_dependencies(model_dir)
        requirements = Path(requirements_file).read_text().splitlines()
        timings["download_s"] = round(time.monotonic() - mark, 3)
        mark = time.monotonic()
        depset = ensure_depset_image(client, settings, requirements, base)
        timings["depset_s"] = round(time.monotonic() - mark, 3)
        mark = time.monotonic()
        runtime = context / "runtime" / "runtime"
        runtime.mkdir(parents=True)
        (context / "runtime" / "__init__.py").write_text("")
        for file in RUNTIME_FILES:
            shutil.copy2(RUNTIME_DIR / file, runtime / file)
        contract = context / "contract"
        contract.mkdir()
        (contract / "__init__.py").write_text("")
        shutil.copy2(CODEC_FILE, contract / CODEC_FILE.name)
        (context / "Dockerfile").write_text(MODEL_DOCKERFILE.format(depset=depset))
        labels = {LABEL_NAME: name, LABEL_VERSION: str(version), "modelbus.depset": depset,
                  "modelbus.image": "model"}
        build_image(client, context, tag, labels=labels)
        timings["model_build_s"] = round(time.monotonic() - mark, 3)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    log.info("model image built", model=name, model_version=version, tag=tag, **timings)
    return ModelImage(tag, name, version, built=True, timings=timings)
