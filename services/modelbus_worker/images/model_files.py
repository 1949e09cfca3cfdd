"""A model version's files, downloaded once into a host cache, and its pip requirements.

The cache entry of a version is keyed by everything that identifies its artifacts
(registry, name, version, source, run id, creation time), so a re-registered version
never reuses stale files. Entries appear atomically (downloaded beside, then renamed);
files are made 0644 and directories 0755, so they can be hard-linked into a container's
directory where the container user reads them but cannot change them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelbus_contract.errors import InternalError, ModelNotFound
from modelbus_delivery.logs import get_logger
from modelbus_worker.images.usage import MODEL_FILES, UsageRecords
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.model_files")

REQUIREMENTS_FILE = "requirements.txt"  # beside the model directory, not inside it


@dataclass
class ModelFiles:
    """A cached copy of one model version: its directory and its pip requirements."""

    model_dir: Path
    requirements: list[str]
    timings: dict[str, float] = field(default_factory=dict)


def _mlflow_client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def lookup_version(client: Any, name: str, version: str, tracking_uri: str) -> Any:
    """The registry's record of ``name``/``version``; ``ModelNotFound`` if it has none."""
    import mlflow.exceptions

    try:
        return client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(f"model {name} version {version}: {exc.message}") from exc
        raise InternalError(
            f"cannot read {name}/{version} from the registry at {tracking_uri}: {exc.message}"
        ) from exc


def cache_key(tracking_uri: str, name: str, version: str, mv: Any) -> str:
    """Identifies the artifacts of one registered version."""
    parts = [tracking_uri, name, str(version), str(mv.source), str(mv.run_id),
             str(mv.creation_timestamp)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def fetch_model_files(
    settings: ContainerSettings, name: str, version: str, tracking_uri: str
) -> ModelFiles:
    """Look the version up in the registry; download its files unless already cached."""
    started = time.monotonic()
    client = _mlflow_client(tracking_uri)
    mv = lookup_version(client, name, version, tracking_uri)
    timings = {"lookup_s": round(time.monotonic() - started, 3)}
    entry = settings.model_cache_root / cache_key(tracking_uri, name, version, mv)
    if not (entry / REQUIREMENTS_FILE).exists():
        mark = time.monotonic()
        _download(client, settings, name, version, tracking_uri, entry)
        timings["download_s"] = round(time.monotonic() - mark, 3)
    requirements = (entry / REQUIREMENTS_FILE).read_text().splitlines()
    UsageRecords(settings.cache_dir).touch_entry(MODEL_FILES, entry.name)
    return ModelFiles(entry / "model", requirements, timings)


def _download(
    client: Any, settings: ContainerSettings, name: str, version: str, tracking_uri: str,
    entry: Path,
) -> None:
    import mlflow.artifacts
    import mlflow.pyfunc

    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    partial.mkdir(parents=True)
    try:
        # Resolve the artifact location through this registry explicitly: a ``models:/``
        # URI would be resolved against the process-wide registry URI.
        location = client.get_model_version_download_uri(name, version)
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(partial / "download"), tracking_uri=tracking_uri,
        )
        # The download lands below its location's last path element: keep the model root
        # (the directory holding MLmodel).
        model_dir = Path(shutil.move(downloaded, partial / "model"))
        shutil.rmtree(partial / "download", ignore_errors=True)
        requirements_file = mlflow.pyfunc.get_model_dependencies(str(model_dir))
        text = Path(requirements_file).read_text()
        make_read_only_tree(model_dir)
        (partial / REQUIREMENTS_FILE).write_text(text)
        try:
            partial.rename(entry)
        except OSError:  # another worker process finished first: use its copy
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("model_files_cached", model=name, model_version=version, path=str(entry))


def make_read_only_tree(root: Path) -> None:
    """Files 0644, directories 0755; symbolic links are removed (never followed: a link
    could point at any file of the host)."""
    root.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for item in [*dirnames, *filenames]:
            path = Path(dirpath, item)
            if path.is_symlink():
                log.warning("model_files_symlink_removed", path=str(path))
                path.unlink()
            else:
                path.chmod(0o755 if path.is_dir() else 0o644)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link the files of ``src`` into a new directory ``dst`` (copying them where a
    link is impossible, e.g. across file systems); directories are made 0755."""
    dst.mkdir()
    dst.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for name in dirnames:
            if not Path(dirpath, name).is_symlink():
                (dst / rel / name).mkdir()
                (dst / rel / name).chmod(0o755)
        for name in filenames:
            source, target = Path(dirpath, name), dst / rel / name
            if source.is_symlink():
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
                target.chmod(0o644)
