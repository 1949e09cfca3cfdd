"""Discovery's fast path: which registered models changed since the last look at the most
recently updated ones, and when the next look is due.

Pure logic: no I/O, the clock is passed in. Why it compares more than a timestamp: MLflow's
SQL registry (checked in 3.17) moves a registered model's ``last_updated_timestamp`` when a
version is created or deleted, a version changes stage, the model is renamed or gets a new
description, but not for a tag set on or deleted from the model or one of its versions, nor
for an alias set or deleted; and it sends no webhook for a tag on the registered model,
which is how the Datagrok page's own flow marks a model after logging it. A look therefore
takes, for the ``window`` most recently updated registered models, their timestamp, their
own tags, their aliases and the tags of their latest versions (what one
``search_registered_models`` page returns), and a model whose state differs from the
previous look's, or that was not in it, is rescanned alone.

The window is the watch list: a model just created or given a new version stays in view
until ``window`` other models are updated after it, so a tag set or removed on it seconds or
hours later is seen at the next look, at the cost of one query per look whatever the size
of the registry. A remembered model that left the view without being pushed out by newer
ones was deleted or renamed: it is rescanned too (and so announced as removed). When every
model of a full look changed, more may have changed than one look shows, and the whole
registry is listed. What stays with webhooks and the full poll: tags of versions older than
a model's latest, and any change to a model out of view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelState:
    """A registered model as one look shows it: what a change that matters to discovery
    alters."""

    name: str
    last_updated: int  # milliseconds, as MLflow reports them
    tags: Pairs = ()
    aliases: Pairs = ()  # (alias, version)
    latest_version_tags: tuple[tuple[str, Pairs], ...] = ()  # (version, its tags)


@dataclass(frozen=True)
class RecentChanges:
    """What one look found: ``models`` to rescan alone, or ``overrun`` (list everything)."""

    models: tuple[str, ...] = ()
    overrun: bool = False


class RecentModels:
    """Remembers the last look at the ``window`` most recently updated registered models and
    tells which of them the next look shows changed; a look is due every ``interval_s``."""

    def __init__(self, window: int, interval_s: float) -> None:
        if window < 1 or interval_s <= 0:
            raise ValueError("the window needs a model and the interval a positive length")
        self.window = window
        self.interval_s = interval_s
        self._seen: dict[str, ModelState] | None = None  # None: no look yet
        self._due_at = float("-inf")

    def due_in(self, now: float) -> float:
        """Seconds until the next look (0: now)."""
        return max(0.0, self._due_at - now)

    def observe(self, states: Sequence[ModelState], now: float) -> RecentChanges:
        """Take a look's answer (newest first); the first look only fills the memory."""
        self._due_at = now + self.interval_s
        previous, current = self._seen, {state.name: state for state in states}
        self._seen = current
        if previous is None:
            return RecentChanges()
        changed = [s.name for s in states if previous.get(s.name) != s]
        full = len(states) >= self.window
        oldest_in_view = min((s.last_updated for s in states), default=0)
        # Out of view although not older than everything in view: it is gone.
        gone = sorted(
            name for name, state in previous.items()
            if name not in current and (not full or state.last_updated >= oldest_in_view)
        )
        return RecentChanges(tuple(changed + gone), overrun=full and len(changed) == len(states))

    def failed(self, now: float) -> None:
        """A look failed: keep the memory (the next look compares with it), try again later."""
        self._due_at = now + self.interval_s
