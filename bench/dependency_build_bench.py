"""Dependency-set build time (issue 23): pip against uv, with a cold and a warm wheel cache,
split into the work on the host and the image build.

Per requirement set (``sklearn``: a scikit-learn model as MLflow logs it, with pandas, numpy,
scipy and cloudpickle; ``pyfunc``: a plain pyfunc, mlflow-skinny, pandas and pyarrow; the
versions are this environment's) and per installer, a dependency-set image is built under a
fresh tag twice:

- **cold**: an empty cache directory (no wheelhouse, no pip or uv cache);
- **warm**: again with that directory kept, as for a new dependency set whose wheels were
  fetched before (pip's wheelhouse of the set is removed, since a new set has none; its HTTP
  cache stays, as uv's cache does).

Columns: resolution and download on the host (pip: ``pip download`` into the wheelhouse; uv:
``uv pip install --target`` of the venv), the image build (pip: ``pip install --no-index``
in an install stage, then its venv copied into the image; uv: the venv unpacked and its
bytecode compiled), their sum and the image's size. Runs go pip, uv, pip, uv for each cache
state; with ``--rounds N`` each figure is the median. Needs the Docker engine and the
package index; the bench's images are removed, the base image is kept.

    .venv/bin/python bench/dependency_build_bench.py                 # ~5 minutes on 2 cores
    .venv/bin/python bench/dependency_build_bench.py --sets pyfunc --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from heavy_flavors_bench import format_size

INSTALLERS = ("pip", "uv")
CACHES = ("cold", "warm")


def requirement_sets() -> dict[str, list[str]]:
    """What MLflow writes for each kind of model, pinned to this environment's versions."""
    pinned = {name: f"{name}=={version(name)}" for name in (
        "mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow")}
    return {
        "sklearn": [pinned[n] for n in ("mlflow", "cloudpickle", "numpy", "pandas",
                                        "scikit-learn", "scipy")],
        "pyfunc": [pinned[n] for n in ("mlflow", "pandas", "pyarrow")],
    }


@dataclass
class Build:
    requirements: str
    installer: str
    cache: str
    used: str  # the installer that built it (uv hands a set it cannot install to pip)
    resolve_s: float
    build_s: float
    image_bytes: int

    @property
    def total_s(self) -> float:
        return self.resolve_s + self.build_s


def build_once(client: Any, settings: Any, normalized: list[str], interpreter: Any,
               base: str, label: str, installer: str, cache: str) -> Build:
    """One dependency-set image under a fresh tag, removed afterwards."""
    import docker.errors

    from modelbus_worker.images.depset import build_depset

    tag = f"modelbus/bench-depset:{installer}-{cache}-{uuid.uuid4().hex[:8]}"
    chosen = settings.model_copy(update={"container_installer": installer})
    try:
        built = build_depset(client, chosen, normalized, interpreter, base, tag)
        size = int(client.images.get(tag).attrs["Size"])
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):  # the build failed
            client.images.remove(tag, force=True)
    return Build(label, installer, cache, built.installer, built.resolve_s, built.build_s, size)


def measure(sets: list[str], rounds: int, root: Path) -> list[Build]:
    import docker

    from modelbus_worker.images.base import ensure_base_image
    from modelbus_worker.images.interpreter import default_interpreter
    from modelbus_worker.images.requirements import normalize_requirements
    from modelbus_worker.settings import ContainerSettings

    client = docker.from_env()
    interpreter = default_interpreter(ContainerSettings())
    base = ensure_base_image(client, ContainerSettings(), interpreter)  # the usual, kept
    known = requirement_sets()
    builds: list[Build] = []
    for label in sets:
        normalized = normalize_requirements(known[label])
        print(f"{label}: {' '.join(normalized)}", flush=True)
        for round_ in range(rounds):
            caches = {i: root / f"{label}-{round_}-{i}" for i in INSTALLERS}
            for cache in CACHES:
                for installer in INSTALLERS:
                    cache_dir = caches[installer]
                    settings = ContainerSettings(cache_dir=cache_dir)
                    shutil.rmtree(settings.wheelhouse_root, ignore_errors=True)
                    os.environ["PIP_CACHE_DIR"] = str(cache_dir / "pip")
                    started = time.perf_counter()
                    build = build_once(client, settings, normalized, interpreter, base, label,
                                       installer, cache)
                    builds.append(build)
                    print(f"  round {round_ + 1} {installer} {cache}: "
                          f"{time.perf_counter() - started:.1f} s", flush=True)
            for cache_dir in caches.values():
                shutil.rmtree(cache_dir, ignore_errors=True)
    return builds


def median_of(builds: list[Build], label: str, installer: str, cache: str) -> Build:
    same = [b for b in builds if (b.requirements, b.installer, b.cache) == (label, installer,
                                                                           cache)]
    return Build(label, installer, cache, "/".join(sorted({b.used for b in same})),
                 statistics.median(b.resolve_s for b in same),
                 statistics.median(b.build_s for b in same),
                 int(statistics.median(b.image_bytes for b in same)))


def print_table(builds: list[Build], sets: list[str]) -> None:
    print("\n| set | cache | installer | resolve + download (host) | image build | total "
          "| image size |")
    print("|---|---|---|---|---|---|---|")
    for label in sets:
        for cache in CACHES:
            for installer in INSTALLERS:
                b = median_of(builds, label, installer, cache)
                used = installer if b.used == installer else f"{installer} (built by {b.used})"
                print(f"| {label} | {cache} | {used} | {b.resolve_s:.1f} s | {b.build_s:.1f} s "
                      f"| {b.total_s:.1f} s | {format_size(b.image_bytes)} |")
    print("\n| set | cache | pip total | uv total | uv / pip |")
    print("|---|---|---|---|---|")
    for label in sets:
        for cache in CACHES:
            pip, uv = (median_of(builds, label, i, cache).total_s for i in INSTALLERS)
            print(f"| {label} | {cache} | {pip:.1f} s | {uv:.1f} s | {uv / pip:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="sklearn,pyfunc",
                        help="comma-separated: sklearn, pyfunc (default: both)")
    parser.add_argument("--rounds", type=int, default=1, help="builds per figure (median)")
    args = parser.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = set(sets) - set(requirement_sets())
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}; known: {sorted(requirement_sets())}")
    from modelbus_delivery.logs import configure_logging

    configure_logging(os.environ.get("MODELBUS_LOG_LEVEL", "WARNING"))
    # The caches (wheelhouses, pip's and uv's) are the bench's own, in a temporary directory.
    with tempfile.TemporaryDirectory(prefix="modelbus-depbench-") as tmp:
        builds = measure(sets, args.rounds, Path(tmp))
    print_table(builds, sets)


if __name__ == "__main__":
    main()
