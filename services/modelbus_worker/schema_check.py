"""Checking a request's Arrow columns against the catalog inputs (pure logic)."""

from __future__ import annotations

import pyarrow as pa

from modelbus_contract.errors import SchemaMismatch
from modelbus_contract.messages import Parameter

from .coercion import ColumnMismatch, arrow_type, coercible
from .tensor_check import conform_tensor, describe, is_tensor, tensor_type

__all__ = ["already_conforms", "coercible", "conform", "expected_type"]


def expected_type(param: Parameter) -> pa.DataType | None:
    """The Arrow type a request column for ``param`` is cast to (None: any type goes)."""
    if is_tensor(param):
        return tensor_type(param)
    return arrow_type(param.arrow_type) if param.arrow_type else None


def already_conforms(schema: pa.Schema, named: list[Parameter]) -> bool:
    """The usual case: exactly the model's columns, in its order, of its types (a tensor
    input never does here: its nulls and ragged rows are checked by ``conform``)."""
    if schema.names != [p.name for p in named]:
        return False
    for param, field in zip(named, schema, strict=True):
        if is_tensor(param):
            return False
        target = expected_type(param)
        if target is not None and not field.type.equals(target):
            return False
    return True


def _expected(param: Parameter) -> str:
    if is_tensor(param):
        return f"{param.name}: {describe(param)}"
    return f"{param.name}: {param.arrow_type or param.type or '?'}"


def _conform_column(param: Parameter, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` cast to the parameter's type; raises ColumnMismatch saying why not."""
    assert param.name is not None
    if is_tensor(param):
        return conform_tensor(param.name, column, param)
    target = expected_type(param)
    if target is None or column.type.equals(target):
        return column
    if not coercible(column.type, target):
        raise ColumnMismatch(f"{param.name!r} is {column.type}, expected {target}")
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ColumnMismatch(f"{param.name!r} cannot be cast to {target}: {reason}") from None


def conform(table: pa.Table, inputs: list[Parameter]) -> pa.Table:
    """The table with the model's input columns, in order and cast to their types.

    Raises SchemaMismatch naming every missing, unexpected and mistyped column.
    """
    named = [p for p in inputs if p.name]
    if not named:
        return table  # nothing known about the inputs: the model itself will judge
    if already_conforms(table.schema, named):
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
        try:
            column = _conform_column(param, table.column(param.name))
        except ColumnMismatch as exc:
            mistyped.append(str(exc))
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
        expected = ", ".join(_expected(p) for p in named)
        raise SchemaMismatch(f"{'; '.join(reasons)} (the model takes {expected})")
    return pa.table(columns, names=names)
