"""Building a catalog entry from a discovery event and the model's MLmodel (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelbus_contract.interpreters import (
    InterpreterSettings,
    place,
    python_minor,
    suite_offers,
    template_offer,
)
from modelbus_contract.messages import CatalogEntry, DiscoveryEvent, Parameter
from modelbus_contract.tensors import default_tensor_name

from .signature import SignatureColumn, SignatureError, parse_side
from .tags import KINDS, Annotation, Kind, merge_tags, parse_annotations


@dataclass
class ModelFacts:
    """What the catalog read about a model version from the registry's artifacts."""

    signature: dict[str, Any] | None = None
    flavors: dict[str, Any] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def build_entry(
    event: DiscoveryEvent, facts: ModelFacts, tag: str = "datagrok",
    interpreters: InterpreterSettings | None = None,
) -> CatalogEntry:
    """Merge signature and tags into one entry; never raises on bad tags or signatures.

    With ``interpreters`` (what workers offer), a model logged with a Python no worker
    has gets a problem saying which one it runs under instead, or that it cannot run.
    """
    tags = merge_tags(event.model_tags, event.version_tags)
    parsed = parse_annotations(tags, tag)
    problems = [*facts.problems, *parsed.problems]
    pyfunc = facts.flavors.get("python_function") or {}
    if interpreters is not None:
        problem = python_problem(pyfunc.get("python_version"), facts.flavors, interpreters)
        if problem is not None:
            problems.append(problem)
    if facts.signature is None:
        problems.append("the model has no signature: parameters come from tags only")
    sides: dict[Kind, list[Parameter]] = {}
    for kind in KINDS:
        columns: list[SignatureColumn] | None = None
        if facts.signature is not None:
            try:
                columns = parse_side(facts.signature.get(kind))
            except SignatureError as exc:
                problems.append(f"signature {kind}: {exc}")
        sides[kind] = _merge_side(kind, columns, parsed.for_kind(kind), problems, tag)
    unnamed = [p.index for p in sides["inputs"] if p.name is None]
    if unnamed:
        problems.append(
            f"inputs {unnamed} have no name: add {tag}-inputs-INDEX-name tags"
        )
    return CatalogEntry(
        name=event.name,
        version=event.version,
        aliases=sorted(event.aliases),
        run_id=event.run_id,
        source=event.source,
        tags=tags,
        inputs=sides["inputs"],
        outputs=sides["outputs"],
        has_signature=facts.signature is not None,
        flavors=sorted(facts.flavors),
        python_version=pyfunc.get("python_version"),
        requirements=facts.requirements,
        status="invalid" if unnamed or not facts.flavors else "ready",
        problems=problems,
        batching=batching_allowed(tags, problems),
        shards=shard_count(tags, problems),
    )


def python_problem(
    logged: object, flavors: dict[str, Any], interpreters: InterpreterSettings
) -> str | None:
    """The problem of a version whose Python no offered interpreter matches, if any.

    A template image (``MODELBUS_WORKER_BASE_IMAGE_TEMPLATE``) is taken to offer every
    Python: whether it can be pulled is only known where a worker tries.
    """
    python = python_minor(logged)
    offers = suite_offers(interpreters)
    if python is None or not offers:
        return None
    template = template_offer(interpreters, python)
    placement = place(python, flavors, offers, template)
    return f"python: {placement.problem}" if placement.problem else None


SHARDS_TAG = "modelbus.shards"
MAX_SHARDS = 64


def shard_count(tags: dict[str, str], problems: list[str]) -> int:
    """The ``modelbus.shards`` tag (version over model): request keys to spread a model over."""
    value = tags.get(SHARDS_TAG)
    if value is None or not value.strip():
        return 1
    text = value.strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_SHARDS:
        return int(text)
    problems.append(
        f"tag {SHARDS_TAG}={value[:50]!r} is not a whole number from 1 to {MAX_SHARDS}: "
        "the model stays on 1 shard"
    )
    return 1


BATCHING_TAG = "modelbus.batching"
_OFF = {"off", "false", "no", "0"}
_ON = {"on", "true", "yes", "1", ""}


def batching_allowed(tags: dict[str, str], problems: list[str]) -> bool:
    """The ``modelbus.batching`` tag (version over model): ``off`` opts out of batching."""
    value = tags.get(BATCHING_TAG)
    if value is None or value.strip().lower() in _ON:
        return True
    if value.strip().lower() in _OFF:
        return False
    problems.append(f"tag {BATCHING_TAG}={value!r} is not on/off: batching stays on")
    return True


def _merge_side(
    kind: Kind,
    columns: list[SignatureColumn] | None,
    annotations: dict[int, Annotation],
    problems: list[str],
    tag: str,
) -> list[Parameter]:
    if columns is None:
        # No signature for this side: the tags alone describe it, indices 0..max.
        if not annotations:
            return []
        top = max(annotations)
        missing = [i for i in range(top + 1) if i not in annotations]
        if missing:
            problems.append(f"{kind} {missing} are described by no {tag}-{kind} tag")
        # Types are unknown without a signature.
        params = [
            Parameter(index=i, name=None, type=None, arrow_type=None) for i in range(top + 1)
        ]
    else:
        params = [
            Parameter(
                index=i, name=c.name, type=c.type, arrow_type=c.arrow_type, optional=c.optional,
                dtype=c.dtype, shape=list(c.shape) if c.shape is not None else None,
            )
            for i, c in enumerate(columns)
        ]
    for index, annotation in sorted(annotations.items()):
        if index >= len(params):
            problems.append(
                f"{tag}-{kind}-{index}-*: index {index} is beyond the signature's "
                f"{len(params)} {kind}; ignored"
            )
            continue
        param = params[index]
        if annotation.name is not None:
            param.name = annotation.name
        if annotation.semtype is not None:
            param.semtype = annotation.semtype
            if param.name is None and param.type != "tensor":
                problems.append(f"{kind} {index} has a semtype but no name")
    name_unnamed_tensors(kind, params)
    return params


def name_unnamed_tensors(kind: Kind, params: list[Parameter]) -> None:
    """Give tensors that neither the signature nor a tag names their default name."""
    unnamed = [p for p in params if p.name is None and p.type == "tensor"]
    for param in unnamed:
        param.name = default_tensor_name(kind, param.index, len(unnamed))
