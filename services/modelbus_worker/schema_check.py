"""Checking a request's Arrow columns against the catalog inputs (pure logic)."""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.types as pat

from modelbus_contract.errors import SchemaMismatch
from modelbus_contract.messages import Parameter


@lru_cache(maxsize=256)
def _arrow_type(name: str) -> pa.DataType | None:
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


def _already_conforms(table: pa.Table, named: list[Parameter]) -> bool:
    """The usual case: exactly the model's columns, in its order, of its types."""
    if table.column_names != [p.name for p in named]:
        return False
    for param, field in zip(named, table.schema, strict=True):
        target = _arrow_type(param.arrow_type) if param.arrow_type else None
        if target is not None and not field.type.equals(target):
            return False
    return True


def conform(table: pa.Table, inputs: list[Parameter]) -> pa.Table:
    """The table with the model's input columns, in order and cast to their types.

    Raises SchemaMismatch naming every missing, unexpected and mistyped column.
    """
    named = [p for p in inputs if p.name]
    if not named:
        return table  # nothing known about the inputs: the model itself will judge
    if _already_conforms(table, named):
        return table
    wanted = {p.name: p for p in named}
    names_given = table.column_names
    repeated = sorted({n for n in names_given if names_given.count(n) > 1})
    if repeated:
        raise SchemaMismatch(f"columns named more than once: {repeated}")
    present = set(names_given)
    missing = [p.name for p in named if p.name not in present and not p.optional]
    extra = [c for c in table.column_names if c not in wanted]
    mistyped: list[str] = []
    columns: list[pa.ChunkedArray] = []
    names: list[str] = []
    for param in named:
        assert param.name is not None
        if param.name not in present:
            continue
        column = table.column(param.name)
        target = _arrow_type(param.arrow_type) if param.arrow_type else None
        if target is not None and not column.type.equals(target):
            if not coercible(column.type, target):
                mistyped.append(f"{param.name!r} is {column.type}, expected {target}")
                continue
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                reason = " ".join(str(exc).split())[:200]
                mistyped.append(f"{param.name!r} cannot be cast to {target}: {reason}")
                continue
        columns.append(column)
        names.append(param.name)
    reasons = []
    if missing:
        reasons.append(f"missing columns {missing}")
    if extra:
        reasons.append(f"unexpected columns {extra}")
    if mistyped:
        reasons.append("wrong types: " + "; ".join(mistyped))
    if reasons:
        expected = ", ".join(f"{p.name}: {p.arrow_type or p.type or '?'}" for p in named)
        raise SchemaMismatch(f"{'; '.join(reasons)} (the model takes {expected})")
    return pa.table(columns, names=names)
