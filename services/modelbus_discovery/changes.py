"""What discovery emits, decided from the last event per key and a fresh registry listing.

Pure logic: no I/O. ``known`` is rebuilt from the discovered topic on start, so a restart
with an unchanged registry emits nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from modelbus_contract.messages import DiscoveryEvent, utc_now, version_key, version_order


@dataclass(frozen=True)
class VersionSnapshot:
    """A READY model version carrying the discovery tag, as listed from the registry."""

    name: str
    version: str
    model_tags: dict[str, str] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    source: str | None = None

    @property
    def key(self) -> str:
        return version_key(self.name, self.version)

    def fingerprint(self) -> str:
        payload = {
            "model_tags": self.model_tags,
            "version_tags": self.version_tags,
            "aliases": sorted(self.aliases),
            "run_id": self.run_id,
            "source": self.source,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def fold(known: dict[str, DiscoveryEvent], event: DiscoveryEvent) -> None:
    """Remember ``event`` as the latest word on its key."""
    known[event.key] = event


def diff(
    known: dict[str, DiscoveryEvent], current: list[VersionSnapshot], model: str | None = None
) -> list[DiscoveryEvent]:
    """Events that bring ``known`` in line with ``current`` (found, updated, removed).

    With ``model``, ``current`` lists that registered model alone: only its versions can
    be removed.
    """
    events: list[DiscoveryEvent] = []
    seen: set[str] = set()
    for snap in sorted(current, key=lambda s: (s.name, version_order(s.version))):
        seen.add(snap.key)
        fp = snap.fingerprint()
        previous = known.get(snap.key)
        kind: Literal["found", "updated"]
        if previous is None or previous.kind == "removed":
            kind = "found"
        elif previous.fingerprint != fp:
            kind = "updated"
        else:
            continue
        events.append(
            DiscoveryEvent(
                kind=kind,
                name=snap.name,
                version=snap.version,
                model_tags=snap.model_tags,
                version_tags=snap.version_tags,
                aliases=sorted(snap.aliases),
                run_id=snap.run_id,
                source=snap.source,
                fingerprint=fp,
            )
        )
    for key, previous in sorted(known.items()):
        if key not in seen and previous.kind != "removed" and model in (None, previous.name):
            events.append(
                previous.model_copy(
                    update={"kind": "removed", "fingerprint": "", "emitted_at": utc_now()}
                )
            )
    return events

