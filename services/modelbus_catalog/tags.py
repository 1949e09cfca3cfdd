"""Parsing of ``datagrok-{inputs|outputs}-{INDEX}-{name|semtype}`` tags (pure logic).

Registered-model tags are read first and version tags override them key by key. Every tag
that cannot be used becomes a human-readable problem instead of an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["inputs", "outputs"]
KINDS: tuple[Kind, ...] = ("inputs", "outputs")
FIELDS = ("name", "semtype")

_TAG = re.compile(r"^(?P<kind>[^-]+)-(?P<index>.+)-(?P<field>[^-]+)$")


@dataclass
class Annotation:
    """What the tags say about one parameter."""

    name: str | None = None
    semtype: str | None = None


@dataclass
class ParsedTags:
    """Annotations by (kind, index), plus the problems found while reading the tags."""

    annotations: dict[tuple[Kind, int], Annotation] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def for_kind(self, kind: Kind) -> dict[int, Annotation]:
        return {i: a for (k, i), a in self.annotations.items() if k == kind}


def merge_tags(model_tags: dict[str, str], version_tags: dict[str, str]) -> dict[str, str]:
    """Registered-model tags overridden by the version's tags of the same key."""
    return {**model_tags, **version_tags}


def parse_annotations(tags: dict[str, str], tag: str = "datagrok") -> ParsedTags:
    """Read every ``{tag}-...`` annotation out of already merged tags."""
    parsed = ParsedTags()
    prefix = f"{tag}-"
    for key in sorted(tags):
        if not key.startswith(prefix):
            continue
        value = tags[key]
        match = _TAG.match(key[len(prefix) :])
        if match is None:
            parsed.problems.append(
                f"tag {key!r}: not of the form {tag}-PARAMETERS-INDEX-TYPE; ignored"
            )
            continue
        kind, raw_index, fld = match["kind"], match["index"], match["field"]
        if kind not in KINDS:
            parsed.problems.append(
                f"tag {key!r}: PARAMETERS must be 'inputs' or 'outputs', not {kind!r}; ignored"
            )
            continue
        if fld not in FIELDS:
            parsed.problems.append(
                f"tag {key!r}: TYPE must be 'name' or 'semtype', not {fld!r}; ignored"
            )
            continue
        if not raw_index.isdigit():
            parsed.problems.append(
                f"tag {key!r}: INDEX must be a non-negative integer, not {raw_index!r}; ignored"
            )
            continue
        if not value.strip():
            parsed.problems.append(f"tag {key!r}: empty value; ignored")
            continue
        annotation = parsed.annotations.setdefault((kind, int(raw_index)), Annotation())
        setattr(annotation, fld, value.strip())
    return parsed
