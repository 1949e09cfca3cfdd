"""Find the Debian mirror apt already uses (deb822 ``.sources`` and one-line ``.list``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def mirror_from_sources(texts: Iterable[str], suite: str) -> str | None:
    """The first ``deb`` URI serving ``suite`` itself (not -security/-updates) in the texts."""
    for text in texts:
        for uris, suites in _entries(text):
            if suite in suites:
                for uri in uris:
                    if "security" not in uri:
                        return uri.rstrip("/")
    return None


def _entries(text: str) -> Iterable[tuple[list[str], list[str]]]:
    # deb822 stanzas are separated by blank lines; one-line entries start with "deb ".
    stanza: dict[str, str] = {}
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.startswith("deb "):
            parts = [p for p in line.split() if not p.startswith("[")]
            if "]" in line:
                parts = ["deb", *line.split("]", 1)[1].split()]
            if len(parts) >= 3:
                yield [parts[1]], [parts[2]]
            continue
        if not line:
            if "deb" in stanza.get("types", "").split() and "uris" in stanza:
                yield stanza["uris"].split(), stanza.get("suites", "").split()
            stanza = {}
            continue
        key, sep, value = line.partition(":")
        if sep and not raw[:1].isspace():
            stanza[key.strip().lower()] = value.strip()


def read_debian_mirror(suite: str) -> str | None:
    """The mirror configured for ``suite`` on this machine, if any."""
    texts: list[str] = []
    for path in APT_SOURCES:
        files = sorted(path.glob("*.sources")) + sorted(path.glob("*.list")) \
            if path.is_dir() else [path]
        for file in files:
            try:
                texts.append(file.read_text())
            except OSError:
                continue
    return mirror_from_sources(texts, suite)
