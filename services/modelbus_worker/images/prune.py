"""``modelbus images prune``: remove our images and cache entries unused for a while.

Images: runtime, dependency-set and (older releases') model images, and untagged
leftovers of our builds; base and root-file-system images only when asked (they take
minutes and a Debian mirror to rebuild). Cache entries: wheelhouses and model files
under the worker's cache directory. See ``retention`` for what counts as used.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelbus_worker.images.image_store import read_store, remove_image
from modelbus_worker.images.retention import BASE_KINDS, PRUNED_KINDS, Store, plan_prune
from modelbus_worker.images.usage import MODEL_FILES, WHEELHOUSE, UsageRecords
from modelbus_worker.settings import ContainerSettings


@dataclass(frozen=True)
class PrunedItem:
    """One image or cache entry removed (or, in a dry run, to be removed)."""

    kind: str  # runtime, depset, model, stage, base, rootfs, wheelhouse, model-files
    name: str
    size: int
    idle_s: float


@dataclass(frozen=True)
class CacheEntry:
    """A wheelhouse or a model version's files in the cache directory."""

    kind: str  # the cache's folder name: wheelhouse or models
    path: Path
    size: int
    last_used: float


def stale_entries(entries: Iterable[CacheEntry], now: float, max_idle_s: float) -> list[CacheEntry]:
    """The entries unused for longer than ``max_idle_s``, least recently used first."""
    stale = [e for e in entries if now - e.last_used > max_idle_s]
    return sorted(stale, key=lambda e: (e.last_used, str(e.path)))


def tree_size(path: Path) -> int:
    """Bytes of the files below ``path`` (links not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def cache_entries(settings: ContainerSettings, usage: UsageRecords) -> list[CacheEntry]:
    """Every wheelhouse and model-files entry; never recorded: its directory's mtime."""
    entries: list[CacheEntry] = []
    for kind, root in ((WHEELHOUSE, settings.wheelhouse_root),
                       (MODEL_FILES, settings.model_cache_root)):
        if not root.is_dir():
            continue
        for path in root.iterdir():
            if not path.is_dir() or path.is_symlink():
                continue
            recorded = usage.entry_time(kind, path.name)
            last = recorded if recorded is not None else path.stat().st_mtime
            entries.append(CacheEntry(kind, path, tree_size(path), last))
    return entries


def forget_gone(usage: UsageRecords, store: Store, settings: ContainerSettings) -> None:
    """Drop the usage records of images and cache entries that exist no more."""
    tags = {tag for image in store.images.values() for tag in image.tags}
    for tag in set(usage.image_times()) - tags:
        usage.forget_image(tag)
    for kind, root in ((WHEELHOUSE, settings.wheelhouse_root),
                       (MODEL_FILES, settings.model_cache_root)):
        for name in usage.entry_names(kind):
            if not (root / name).exists():
                usage.forget_entry(kind, name)


def prune(
    client: Any,
    settings: ContainerSettings,
    max_idle_s: float,
    include_base: bool = False,
    dry_run: bool = False,
    report: Callable[[PrunedItem], None] = lambda item: None,
) -> int:
    """Remove what was unused for longer than ``max_idle_s``; ``report`` each item as it
    goes. Returns the bytes freed (or, with ``dry_run``, that would be)."""
    usage = UsageRecords(settings.cache_dir)
    now = time.time()
    kinds = PRUNED_KINDS | BASE_KINDS if include_base else PRUNED_KINDS
    freed = 0
    store = read_store(client, usage)
    if not dry_run:
        forget_gone(usage, store, settings)
    for image in plan_prune(store, kinds, now, max_idle_s):
        if dry_run or remove_image(client, usage, image.image_id, image.tags):
            freed += image.size
            report(PrunedItem(image.kind, image.name, image.size, image.idle_s))
    for entry in stale_entries(cache_entries(settings, usage), now, max_idle_s):
        if not dry_run:
            shutil.rmtree(entry.path)
            usage.forget_entry(entry.kind, entry.path.name)
        freed += entry.size
        kind = "model-files" if entry.kind == MODEL_FILES else entry.kind
        report(PrunedItem(kind, str(entry.path), entry.size, now - entry.last_used))
    return freed
