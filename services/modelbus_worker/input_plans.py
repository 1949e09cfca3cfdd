"""What checking a model version's inputs needs, worked out once per version (pure logic).

A request is checked against its version's catalog inputs: the types its columns are cast
to bound the memory a decode may take, and a table whose columns already are the model's,
in order and of its types, goes to the model as it is. Clients send the same schema request
after request, and ``arrow_bounds`` hands back the same schema object for the same schema
message, so the answer for a schema is remembered by that object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from modelbus_contract.arrow_bounds import cast_bytes
from modelbus_contract.messages import CatalogEntry, Parameter

from .schema_check import already_conforms, expected_type

# Schemas remembered per version as conforming (a client or two, a few column orders).
_SCHEMAS_PER_VERSION = 8
_ROW_COUNTS_PER_VERSION = 64


@dataclass(slots=True)
class InputPlan:
    """The checks of one version's inputs."""

    inputs: list[Parameter]  # the catalog entry's list, compared by identity
    targets: list[pa.DataType]  # the types named inputs are cast to
    named: list[Parameter]
    conforming: list[pa.Schema] = field(default_factory=list)
    _cast_bytes: dict[int, int] = field(default_factory=dict)

    def cast_bytes(self, rows: int) -> int:
        """What casting ``rows`` rows to the targets allocates at least (see
        ``arrow_bounds.cast_bytes``), remembered for the last few row counts."""
        known = self._cast_bytes.get(rows)
        if known is None:
            if len(self._cast_bytes) >= _ROW_COUNTS_PER_VERSION:
                self._cast_bytes.pop(next(iter(self._cast_bytes)))
            known = self._cast_bytes[rows] = cast_bytes(rows, self.targets)
        return known

    def conforms(self, schema: pa.Schema) -> bool:
        """Whether a table of ``schema`` already has exactly the model's columns."""
        if any(known is schema for known in self.conforming):
            return True
        if not self.named or not already_conforms(schema, self.named):
            return False
        if len(self.conforming) >= _SCHEMAS_PER_VERSION:
            self.conforming.pop(0)
        self.conforming.append(schema)
        return True


class InputPlans:
    """One ``InputPlan`` per model version, made again when its catalog entry changes."""

    def __init__(self, max_versions: int = 1024) -> None:
        self._plans: dict[tuple[str, str], InputPlan] = {}
        self._max_versions = max_versions

    def of(self, entry: CatalogEntry) -> InputPlan:
        key = (entry.name, entry.version)
        plan = self._plans.get(key)
        if plan is not None and plan.inputs is entry.inputs:
            return plan
        named = [p for p in entry.inputs if p.name]
        targets = [t for t in (expected_type(p) for p in named) if t is not None]
        if plan is None and len(self._plans) >= self._max_versions:
            self._plans.pop(next(iter(self._plans)))
        plan = self._plans[key] = InputPlan(entry.inputs, targets, named)
        return plan
