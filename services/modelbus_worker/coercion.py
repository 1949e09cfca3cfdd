"""Which Arrow types a request column may be cast to without changing meaning (pure logic)."""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.types as pat


class ColumnMismatch(ValueError):
    """Why a request column cannot be the model's input (one sentence naming the column)."""


@lru_cache(maxsize=256)
def arrow_type(name: str) -> pa.DataType | None:
    """The Arrow type named by a catalog ``arrow_type`` alias (None if it names none)."""
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        return None


def coercible(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether a column of ``source`` may be cast to ``target`` without changing meaning."""
    if source.equals(target) or pat.is_null(source):
        return True
    if pat.is_dictionary(source):
        return coercible(source.value_type, target)
    if pat.is_string(target) or pat.is_large_string(target):
        return bool(pat.is_string(source) or pat.is_large_string(source))
    if pat.is_floating(target):
        return bool(pat.is_integer(source) or pat.is_floating(source))
    if pat.is_integer(target):
        return bool(pat.is_integer(source))
    if pat.is_binary(target) or pat.is_large_binary(target):
        return bool(pat.is_binary(source) or pat.is_large_binary(source))
    if pat.is_timestamp(target):
        return bool(pat.is_timestamp(source) or pat.is_date(source))
    return False
