"""Pure logic of dependency sets: normalized pip requirements, their hash and image tag."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# What the in-container runtime itself imports.
RUNTIME_REQUIREMENTS = ("mlflow-skinny", "pandas", "pyarrow")
DEPSET_REPOSITORY = "modelbus/depset"
_TAG_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


class RequirementsError(ValueError):
    """A requirement line that pip could not read either."""


def normalize_requirements(
    lines: Iterable[str], runtime: Iterable[str] = RUNTIME_REQUIREMENTS
) -> list[str]:
    """Requirements as the image installs them: one canonical form per line, sorted.

    Comments, blank lines and pip options (``-r``, ``--index-url`` ...) are dropped;
    ``mlflow`` becomes ``mlflow-skinny`` with the same specifier and marker; the
    runtime's own packages are added unless already constrained.
    """
    found: dict[str, Requirement] = {}
    out: set[str] = set()
    for raw in lines:
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise RequirementsError(f"cannot read requirement {line!r}: {exc}") from exc
        if req.url:
            raise RequirementsError(f"URL requirements cannot be installed offline: {line!r}")
        name = str(canonicalize_name(req.name))
        if name == "mlflow":
            req.extras, name = set(), "mlflow-skinny"
        req.name = name
        found[name] = req
        out.add(str(req))
    for extra in runtime:
        if canonicalize_name(extra) not in found:
            out.add(str(Requirement(extra)))
    return sorted(out, key=lambda r: (canonicalize_name(Requirement(r).name), r))


def requirements_hash(requirements: Iterable[str], salt: str = "") -> str:
    """Hex sha256 of normalized requirements (and e.g. the base image id) — the set's id."""
    text = salt + "\n" + "\n".join(requirements) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def depset_tag(requirements: Iterable[str], salt: str = "", length: int = 16) -> str:
    """The image tag shared by every model with these normalized requirements."""
    return f"{DEPSET_REPOSITORY}:{requirements_hash(requirements, salt)[:length]}"


def sanitize_tag_part(text: str, max_len: int = 80) -> str:
    """A string usable inside a Docker tag (lowercase, ``[a-z0-9_.-]``, no leading dot/dash)."""
    cleaned = _TAG_UNSAFE.sub("-", text.lower()).strip(".-")
    return (cleaned or "model")[:max_len]


def pip_platforms(glibc: str = "2.36", arch: str = "x86_64") -> list[str]:
    """Every manylinux platform tag a container with this glibc accepts, newest first."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]  # pip adds manylinux2010/1 for this one
