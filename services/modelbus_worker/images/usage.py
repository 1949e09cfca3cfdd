"""When each image and cache entry was last used: one empty file per item under
``cache_dir/usage``, its modification time being the last use.

Images are recorded by tag (``usage/images/modelbus+runtime:<hash>``), cache entries by
their directory name (``usage/wheelhouse/<key>``, ``usage/models/<key>``). A failure to
record is logged, never raised: serving a model does not depend on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelbus_delivery.logs import get_logger

log = get_logger("modelbus_worker.images.usage")

IMAGES = "images"
WHEELHOUSE = "wheelhouse"
MODEL_FILES = "models"


def _file_name(tag: str) -> str:
    return tag.replace("/", "+")  # "+" occurs in no image reference


class UsageRecords:
    """The usage records of one worker cache directory."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "usage"

    def touch_image(self, tag: str, at: float | None = None) -> None:
        """Record that the image ``tag`` was used now (or at ``at``, seconds since the epoch)."""
        self._touch(self.root / IMAGES / _file_name(tag), at)

    def touch_entry(self, kind: str, name: str, at: float | None = None) -> None:
        """Record a use of the cache entry ``name`` of ``kind`` (``wheelhouse``, ``models``)."""
        self._touch(self.root / kind / name, at)

    def image_times(self) -> dict[str, float]:
        """Last use per image tag, for every image recorded."""
        folder = self.root / IMAGES
        if not folder.is_dir():
            return {}
        times: dict[str, float] = {}
        for item in folder.iterdir():
            try:
                times[item.name.replace("+", "/")] = item.stat().st_mtime
            except FileNotFoundError:  # forgotten meanwhile
                continue
        return times

    def entry_time(self, kind: str, name: str) -> float | None:
        """Last use of a cache entry, or ``None`` if it was never recorded."""
        try:
            return (self.root / kind / name).stat().st_mtime
        except FileNotFoundError:
            return None

    def entry_names(self, kind: str) -> list[str]:
        """The cache entries of ``kind`` with a usage record."""
        folder = self.root / kind
        return sorted(item.name for item in folder.iterdir()) if folder.is_dir() else []

    def forget_image(self, tag: str) -> None:
        (self.root / IMAGES / _file_name(tag)).unlink(missing_ok=True)

    def forget_entry(self, kind: str, name: str) -> None:
        (self.root / kind / name).unlink(missing_ok=True)

    @staticmethod
    def _touch(path: Path, at: float | None) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            if at is not None:
                os.utime(path, (at, at))
        except OSError as exc:
            log.warning("usage_not_recorded", path=str(path), error=str(exc))
