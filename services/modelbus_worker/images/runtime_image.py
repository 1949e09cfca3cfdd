"""Runtime images: a dependency-set image plus the in-container runtime, one per depset.

No model is baked in: a container of a runtime image starts in standby and is handed a
model's files (through its bind-mounted directory) and a ``LOAD`` frame. So every model
version with the same requirements runs from the same image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.base import ensure_base_image, image_available
from modelbus_worker.images.depset import ensure_depset_image
from modelbus_worker.images.docker_build import build_image, image_exists
from modelbus_worker.images.image_store import keep_under_budget
from modelbus_worker.images.interpreter import Interpreter, default_interpreter, interpreter_for
from modelbus_worker.images.model_files import fetch_model_files
from modelbus_worker.images.requirements import normalize_requirements
from modelbus_worker.images.usage import UsageRecords
from modelbus_worker.images.wheelhouse import raise_if_remembered
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.runtime")

RUNTIME_REPOSITORY = "modelbus/runtime"
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
RUNTIME_FILES = ("__init__.py", "protocol.py", "arrow_io.py", "tensors.py", "server.py")
# The contract's Arrow codec and tensor types run in the container too (only pyarrow needed).
CONTRACT_DIR = Path(__file__).resolve().parents[2] / "modelbus_contract"
CONTRACT_FILES = ("arrow_codec.py", "tensors.py")

RUNTIME_DOCKERFILE = """\
FROM {depset}
COPY --chown=0:0 runtime /opt/modelbus/modelbus_worker
COPY --chown=0:0 contract /opt/modelbus/modelbus_contract
ENV PYTHONPATH=/opt/modelbus
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/python", "-m", "modelbus_worker.runtime.server"]
CMD ["--socket", "/sock/model.sock"]
"""


@lru_cache(maxsize=1)  # the sources do not change while the worker runs
def runtime_digest() -> str:
    """Hash of the runtime sources and Dockerfile, so a changed runtime yields new images."""
    digest = hashlib.sha256(RUNTIME_DOCKERFILE.encode())
    for name in RUNTIME_FILES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    for name in CONTRACT_FILES:
        digest.update((CONTRACT_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def ensure_runtime_image(client: Any, settings: ContainerSettings, depset: str) -> str:
    """The tag of the runtime image on top of the ``depset`` image, built if missing."""
    digest = runtime_digest()
    key = f"{client.images.get(depset).id}|{digest}"
    tag = f"{RUNTIME_REPOSITORY}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if image_exists(client, tag):
        return tag
    started = time.monotonic()
    context = settings.build_root / f"runtime-{tag.rsplit(':', 1)[1]}-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    try:
        runtime = context / "runtime" / "runtime"
        runtime.mkdir(parents=True)
        (context / "runtime" / "__init__.py").write_text("")
        for file in RUNTIME_FILES:
            shutil.copy2(RUNTIME_DIR / file, runtime / file)
        contract = context / "contract"
        contract.mkdir()
        (contract / "__init__.py").write_text("")
        for file in CONTRACT_FILES:
            shutil.copy2(CONTRACT_DIR / file, contract / file)
        (context / "Dockerfile").write_text(RUNTIME_DOCKERFILE.format(depset=depset))
        labels = {"modelbus.image": "runtime", "modelbus.depset": depset,
                  "modelbus.runtime": digest}
        build_image(client, context, tag, labels=labels)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    log.info("runtime_image_built", tag=tag, depset=depset,
             seconds=round(time.monotonic() - started, 2))
    keep_under_budget(client, settings, keep=tag)
    return tag


KnownImages = MutableMapping[tuple[Interpreter, tuple[str, ...]], str]


def runtime_image_for(
    client: Any,
    settings: ContainerSettings,
    requirements: list[str],
    build_lock: AbstractContextManager[Any] | None = None,
    known: KnownImages | None = None,
    interpreter: Interpreter | None = None,
) -> str:
    """The runtime image for a model with these pip requirements under ``interpreter``
    (default: the default one); base, depset and runtime images are built if missing,
    under ``build_lock``. ``known`` remembers the answer per interpreter and normalized
    requirements, so a cached image costs one check."""
    interpreter = interpreter or default_interpreter(settings)
    key = (interpreter, tuple(normalize_requirements(requirements)))
    if known is not None:
        tag = known.get(key)
        if tag is not None and image_exists(client, tag):
            UsageRecords(settings.cache_dir).touch_image(tag)
            return tag
    # A set known to be unresolvable fails now, not after other builds free the lock.
    raise_if_remembered(settings, list(key[1]), interpreter)
    with build_lock or nullcontext():
        base = ensure_base_image(client, settings, interpreter)
        depset = ensure_depset_image(client, settings, requirements, base, interpreter)
        tag = ensure_runtime_image(client, settings, depset)
    if known is not None:
        known[key] = tag
    UsageRecords(settings.cache_dir).touch_image(tag)
    return tag


@dataclass
class PreparedModel:
    """A model version ready to be handed to a container of its runtime image."""

    name: str
    version: str
    model_dir: Path
    image: str
    timings: dict[str, float] = field(default_factory=dict)


def prepare_model(
    client: Any,
    settings: ContainerSettings,
    name: str,
    version: str,
    tracking_uri: str,
    build_lock: AbstractContextManager[Any] | None = None,
    known: KnownImages | None = None,
    on_step: Callable[[str], None] | None = None,
) -> PreparedModel:
    """Registry lookup, files (downloaded once), the interpreter the version's Python asks
    for, and its runtime image. Raises ModelUnavailable when no interpreter can load it.
    ``on_step`` is told ``files``, then ``images``, as each begins."""
    if on_step is not None:
        on_step("files")
    files = fetch_model_files(settings, name, version, tracking_uri)
    if on_step is not None:
        on_step("images")
    mark = time.monotonic()
    interpreter = interpreter_for(
        files.model_dir, settings, lambda image: image_available(client, image))
    image = runtime_image_for(
        client, settings, files.requirements, build_lock, known, interpreter)
    timings = {**files.timings, "depset_s": round(time.monotonic() - mark, 3)}
    return PreparedModel(name, version, files.model_dir, image, timings)
