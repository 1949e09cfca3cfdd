"""The two request lanes: ``interactive`` (the requests topic) and ``bulk`` (the bulk
requests topic). Same contract, same keys, same partition count; a worker takes
interactive requests first and lets bulk ones keep only a minimum share while interactive
work waits or runs. A request chooses its lane by the topic it is written to."""

from __future__ import annotations

from typing import Literal, get_args

from .channels import Topics

Lane = Literal["interactive", "bulk"]
LANES: tuple[Lane, ...] = get_args(Lane)


def lane_topic(topics: Topics, lane: Lane) -> str:
    """The requests topic of ``lane`` (ValueError for a lane that is not one)."""
    if lane == "interactive":
        return topics.requests
    if lane == "bulk":
        return topics.requests_bulk
    raise ValueError(f"lane must be one of {', '.join(LANES)}, not {lane!r}")
