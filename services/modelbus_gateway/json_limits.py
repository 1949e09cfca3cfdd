"""Bounds of a JSON body checked before it is parsed (pure logic): nesting depth and the
number of values, over the raw bytes, in C-speed passes (regex and numpy), so a hostile
body costs a scan, never a deep recursion or millions of Python objects."""

from __future__ import annotations

import re

import numpy as np

from modelbus_contract.errors import BadRequest, TooLarge

# A complete JSON string (escapes included); an unterminated one is left for the parser.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE = np.zeros(256, dtype=np.int8)
_CLOSE[[ord("]"), ord("}")]] = 1
_SEPARATOR = np.zeros(256, dtype=np.int8)
_SEPARATOR[[ord(","), ord("["), ord("{")]] = 1


def check_json_bounds(body: bytes, max_depth: int, max_elements: int) -> None:
    """Raise ``BadRequest`` when ``body`` nests arrays/objects deeper than ``max_depth``,
    ``TooLarge`` when it holds more than ``max_elements`` values (counted from commas and
    brackets: an upper bound of the values a parser would make)."""
    opens = body.count(b"[") + body.count(b"{")
    if opens <= max_depth and opens + body.count(b",") + 1 <= max_elements:
        return  # within both bounds even if every bracket nested: no scan needed
    structure = _STRING.sub(b'""', body)
    codes = np.frombuffer(structure, dtype=np.uint8)
    if codes.size == 0:
        return
    brackets = codes[(_OPEN[codes] | _CLOSE[codes]).astype(bool)]
    steps = _OPEN[brackets].astype(np.int32) - _CLOSE[brackets]
    depth = int(np.cumsum(steps).max(initial=0))
    if depth > max_depth:
        raise BadRequest(f"the JSON body nests {depth} levels deep, over the limit of "
                         f"{max_depth}")
    elements = int(_SEPARATOR[codes].sum(dtype=np.int64)) + 1
    if elements > max_elements:
        raise TooLarge(f"the JSON body holds about {elements:,} values, over the limit of "
                       f"{max_elements:,}")
