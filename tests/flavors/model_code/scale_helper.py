"""A helper module shipped with the model through ``code_paths``."""

from __future__ import annotations


def scale(value: float) -> float:
    return 3.0 * value + 1.0
