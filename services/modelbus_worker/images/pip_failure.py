"""Why ``pip download`` failed, read from its ``-vv`` output (pure logic, no I/O).

pip's own last lines ("No matching distribution found for docopt==0.6.2") do not say why:
with ``--only-binary`` a requirement that has only a source distribution, wheels only for
other Pythons or platforms, or no such version at all all read the same. The verbose lines
about each file pip skipped do say it; this module condenses them into one decisive line:

- ``docopt==0.6.2: no wheel for Python 3.11 / manylinux_2_36_x86_64 (only a source
  distribution)``
- ``numpy==2.5.5: no wheel for Python 3.11 / manylinux_2_36_x86_64 (wheels only for cp312,
  cp313; Requires-Python >=3.12)``
- ``django==6.0: requires a different Python (Requires-Python >=3.12, the container runs 3.11)``
- ``numpy==9.9: no matching version (pip: from versions: ..., 2.4.5, 2.4.6)``
- ``conflicting requirements: The user requested urllib3==1.20; requests 2.31.0 depends on
  urllib3<3 and >=1.21.1``

Those are the model's to fix (``model_fault``). An index that cannot be reached or refuses
the credentials is not: ``kind == "network"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

FailureKind = Literal["no_wheel", "no_version", "requires_python", "conflict", "network", "unknown"]
MODEL_FAULTS: frozenset[str] = frozenset({"no_wheel", "no_version", "requires_python", "conflict"})

TAIL_LINES = 3
MAX_LINE = 300
MAX_TAIL_LINE = 200
MAX_LISTED = 8

_NOT_FOUND = re.compile(r"No matching distribution found for (?P<req>.+?)\s*$")
_FROM_VERSIONS = re.compile(r"\(from versions: (?P<versions>[^)]*)\)")
# "  Skipping link: <reason>: <url> (from <page>) (requires-python:>=3.12)" and
# "  Link requires a different Python (3.11.0 not in: '>=3.12'): <url> (from ...)"
_SKIPPED = re.compile(
    r"^\s*(?:Skipping link: (?P<reason>.*?)|Link requires a different Python \((?P<py>[^)]*)\))"
    r": (?P<url>\S+)(?P<rest>.*)$"
)
_REQUIRES_PYTHON = re.compile(r"\(requires-python:(?P<spec>[^)]*)\)")
_NOISE = ("ERROR: Ignored the following yanked versions",)
_NETWORK = re.compile(
    r"after connection broken by|Failed to establish a new connection|Max retries exceeded"
    r"|Read timed out|HTTP error \d{3}|\b40[137] Client Error|Credentials not correct"
    r"|\b5\d\d Server Error|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|SSLError|ProxyError|CERTIFICATE_VERIFY_FAILED",
)


@dataclass(frozen=True)
class PipFailure:
    """What made ``pip download`` fail: the decisive line and a short tail of pip's errors."""

    kind: FailureKind
    decisive: str
    tail: str
    requirement: str | None = None

    @property
    def model_fault(self) -> bool:
        """Whether the model's requirements are to blame (not the index or the network)."""
        return self.kind in MODEL_FAULTS

    @property
    def message(self) -> str:
        return f"{self.decisive}\npip: {self.tail}" if self.tail else self.decisive


@dataclass(frozen=True)
class _File:
    """One distribution file pip saw and skipped."""

    version: Version | None
    wheel_tags: tuple[str, ...]  # "cp312-cp312-manylinux_2_28_x86_64", ...; () for an sdist
    requires_python: str | None
    python_mismatch: bool


def explain(output: str, python: str, platform: str) -> PipFailure:
    """The failure in ``output`` (pip's stdout and stderr) for a container running
    ``python`` (e.g. "3.11") on ``platform`` (its newest tag, e.g. manylinux_2_36_x86_64)."""
    lines = output.splitlines()
    tail = _error_tail(lines)
    conflict = _conflict(lines)
    if conflict:
        return PipFailure("conflict", f"conflicting requirements: {conflict}", tail)
    network = [
        line.strip().removeprefix("WARNING: ") for line in lines
        if _NETWORK.search(line) or _unfetched(line)
    ]
    if network:
        # pip's own summary of the request that failed reads best; else the first symptom.
        fetch = next((line for line in network if line.startswith("Could not fetch URL")), None)
        return PipFailure("network", f"package index error: {_short(fetch or network[0])}",
                          tail)
    missing = _missing_requirement(lines)
    if missing is None:
        errors = [line for line in lines if line.startswith("ERROR:")]
        decisive = _short(errors[-1].removeprefix("ERROR: ")) if errors else "pip download failed"
        return PipFailure("unknown", decisive, tail)
    kind, why = _why_missing(lines, missing, python, platform)
    return PipFailure(kind, f"{missing}: {why}", tail, missing)


def _unfetched(line: str) -> bool:
    """pip could not read an index page, for another reason than that the index has no
    such project (a 404 is how an index says so)."""
    return line.startswith("Could not fetch URL") and "404 Client Error" not in line


def _why_missing(
    lines: list[str], missing: str, python: str, platform: str
) -> tuple[FailureKind, str]:
    try:
        req: Requirement | None = Requirement(missing)
    except InvalidRequirement:
        req = None
    files = list(_files_of(lines, req)) if req is not None else []
    if files:
        wheels = [f for f in files if f.wheel_tags]
        if wheels and all(f.python_mismatch for f in wheels):
            spec = next((f.requires_python for f in wheels if f.requires_python), "?")
            return "requires_python", (
                f"requires a different Python (Requires-Python {spec}, the container runs "
                f"{python})"
            )
        where = f"no wheel for Python {python} / {platform}"
        if not wheels:
            return "no_wheel", f"{where} (only a source distribution)"
        listed = _listed(_wheel_targets(wheels, python))
        excluding = next(
            (f.requires_python for f in wheels if _excludes(f.requires_python, python)), None
        )
        requires = f"; Requires-Python {excluding}" if excluding else ""
        return "no_wheel", f"{where} (wheels only for {listed}{requires})"
    return "no_version", f"no matching version (pip: {_from_versions(lines)})"


def _files_of(lines: Iterable[str], req: Requirement) -> Iterable[_File]:
    """The skipped files of ``req``'s project whose version ``req`` accepts."""
    name = canonicalize_name(req.name)
    for line in lines:
        match = _SKIPPED.match(line)
        if match is None:
            continue
        filename = match.group("url").split("#", 1)[0].rsplit("/", 1)[-1]
        parsed = _parse_filename(filename)
        if parsed is None or parsed[0] != name:
            continue
        version, tags = parsed[1], parsed[2]
        if version is None or not req.specifier.contains(version, prereleases=True):
            continue
        rp = _REQUIRES_PYTHON.search(match.group("rest"))
        reason = match.group("reason") or ""
        mismatch = match.group("py") is not None or "Requires-Python" in reason
        yield _File(version, tags, rp.group("spec") if rp else None, mismatch)


def _excludes(spec: str | None, python: str) -> bool:
    """Whether a Requires-Python ``spec`` rules out ``python``."""
    try:
        return spec is not None and not SpecifierSet(spec).contains(f"{python}.0")
    except InvalidSpecifier:
        return False


def _parse_filename(filename: str) -> tuple[str, Version | None, tuple[str, ...]] | None:
    try:
        if filename.endswith(".whl"):
            name, version, _, tags = parse_wheel_filename(filename)
            return str(name), version, tuple(sorted(str(t) for t in tags))
        name, version = parse_sdist_filename(filename)
        return str(name), version, ()
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _wheel_targets(wheels: Iterable[_File], python: str) -> list[str]:
    """What the wheels are built for: their Python tags, or, when some fit this Python,
    their platforms."""
    abi = f"cp{python.replace('.', '')}"
    tags = [tag.split("-") for f in wheels for tag in f.wheel_tags]
    fitting = [t for t in tags if t[0] in (abi, "py3", f"py{python.replace('.', '')}")]
    if fitting:
        return sorted({t[2] for t in fitting})
    return sorted({t[0] for t in tags}, key=_tag_order)


def _tag_order(tag: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", tag)
    return (int(digits[1:] or 0) if digits.startswith("3") else -1, tag)


def _listed(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f", … ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(shown) + more


def _missing_requirement(lines: list[str]) -> str | None:
    for line in reversed(lines):
        match = _NOT_FOUND.search(line)
        if match:
            return match.group("req")
    return None


def _from_versions(lines: list[str]) -> str:
    for line in reversed(lines):
        match = _FROM_VERSIONS.search(line)
        if match:
            versions = [v.strip() for v in match.group("versions").split(",") if v.strip()]
            if not versions or versions == ["none"]:
                return "from versions: none"
            shown = versions[-MAX_LISTED:]
            return "from versions: " + ("…, " if len(versions) > len(shown) else "") + ", ".join(
                shown
            )
    return "no candidate found"


def _conflict(lines: list[str]) -> str | None:
    """The lines under pip's "The conflict is caused by:", joined."""
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "The conflict is "
                     "caused by:")
    except StopIteration:
        return None
    causes = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        causes.append(line.strip())
    return _short("; ".join(causes), 600) if causes else None


def _error_tail(lines: list[str]) -> str:
    """pip's last ERROR lines (its own summary), each cut short."""
    errors = [
        _short(line.removeprefix("ERROR: "), MAX_TAIL_LINE) for line in lines
        if line.startswith("ERROR:") and not line.startswith(_NOISE)
    ]
    return "\n".join(errors[-TAIL_LINES:])


def _short(text: str, limit: int = MAX_LINE) -> str:
    text = text.strip()
    return text if len(text) <= limit else f"{text[:limit - 1]}…"
