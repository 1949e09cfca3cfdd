"""Durations (``30m``, ``12h``, ``7d``) and sizes (``500m``, ``20g``) as people write them."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
UNLIMITED = ("", "0", "none", "unlimited", "off")


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``30s``, ``30m``, ``12h``, ``7d`` or ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 12h, 7d)")
    return float(match[1]) * _SECONDS[match[2].lower()]


def parse_size(text: str) -> int:
    """Bytes of ``1024``, ``500k``, ``500m``, ``20g``, ``1t`` (binary units; ``20GB``,
    ``20GiB`` are read alike)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 500m, 20g)")
    return int(float(match[1]) * _BYTES[match[2].lower()])


def parse_budget(text: str) -> int | None:
    """A size, or ``None`` (no budget) for an empty string, ``0``, ``none`` or ``unlimited``."""
    if text.strip().lower() in UNLIMITED:
        return None
    return parse_size(text)


def format_size(size: int) -> str:
    """``1.5 GB``, ``352.0 MB``, ``12 B`` (binary units)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``5.0h``, ``9.2d``: the largest unit that is at least one."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
