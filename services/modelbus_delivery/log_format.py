"""How log lines look: aligned text for a person at a terminal, JSON lines for machines.

``auto`` (the default) is ``console`` when stderr is a terminal and ``json`` otherwise;
colours only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org).
Pure: the caller says whether the stream is a terminal and passes the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias, get_args

LogFormat: TypeAlias = Literal["auto", "console", "json"]
Rendering: TypeAlias = Literal["console", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)


def rendering(requested: str, is_terminal: bool) -> Rendering:
    """What ``requested`` (a ``LogFormat``; anything else counts as ``auto``) renders."""
    if requested == "console":
        return "console"
    if requested == "json":
        return "json"
    return "console" if is_terminal else "json"


def use_colours(is_terminal: bool, environ: Mapping[str, str]) -> bool:
    """Colours on a terminal unless ``NO_COLOR`` is set to anything but the empty string."""
    return is_terminal and not environ.get("NO_COLOR")
