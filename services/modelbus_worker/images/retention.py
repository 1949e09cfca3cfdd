"""Which images to remove: pure logic over a snapshot of the image store.

An image's *last use* is the latest usage record of its tags (else its creation time),
raised to the last use of every image built on it: a dependency-set image is as recent as
its newest runtime image. An image is never removed while a container (running or not)
uses it or any image built on it, nor while an image outside the removal is built on it.
Sizes are exclusive: an image's size minus that of the nearest tagged image it is built
on, so the sizes of a removal add up to what it frees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Repositories whose images are ours to remove, and the kind of each.
MODELBUS_REPOSITORIES: Mapping[str, str] = {
    "modelbus/runtime": "runtime",
    "modelbus/depset": "depset",
    "modelbus/model": "model",  # per-version images of older releases
    "modelbus/base": "base",
    "modelbus/rootfs": "rootfs",
}
# Labels of untagged leftovers of our builds (``stage``): an install stage, or anything
# built on a modelbus base image that lost its tag.
STAGE_LABELS = ("modelbus.stage", "modelbus.base")
PRUNED_KINDS = frozenset({"runtime", "depset", "model", "stage"})
BASE_KINDS = frozenset({"base", "rootfs"})  # slow to rebuild: pruned only when asked
EVICTED_KINDS = frozenset({"runtime", "depset", "model", "stage"})


@dataclass(frozen=True)
class StoredImage:
    """One image of the engine (tagged, untagged leftover or build intermediate)."""

    id: str
    parent: str  # "" for none
    tags: tuple[str, ...]
    size: int  # with every layer it is built on
    created: float  # seconds since the epoch
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """Which images are ours: by repository, and untagged ones by label."""

    repositories: Mapping[str, str] = field(default_factory=lambda: MODELBUS_REPOSITORIES)
    stage_labels: tuple[str, ...] = STAGE_LABELS


@dataclass(frozen=True)
class ImageRemoval:
    """An image to remove, with the bytes that frees and how long it was unused."""

    kind: str
    name: str  # its first tag, or its short id
    image_id: str
    tags: tuple[str, ...]
    size: int
    idle_s: float


class Store:
    """A snapshot of the engine's images, the images containers use and the usage records."""

    def __init__(
        self,
        images: Iterable[StoredImage],
        in_use: Iterable[str],
        used_at: Mapping[str, float],
        scope: Scope | None = None,
    ) -> None:
        self.images = {image.id: image for image in images}
        self.in_use = frozenset(i for i in in_use if i in self.images)
        self.used_at = used_at
        self.scope = scope or Scope()
        self.children: dict[str, list[str]] = {}
        for image in self.images.values():
            if image.parent in self.images:
                self.children.setdefault(image.parent, []).append(image.id)
        self.kinds = {i: k for i in self.images if (k := self._kind(self.images[i])) is not None}
        self.last_used = self._last_used()

    def _kind(self, image: StoredImage) -> str | None:
        if image.tags:
            kinds = {self.scope.repositories.get(tag.rpartition(":")[0]) for tag in image.tags}
            return kinds.pop() if len(kinds) == 1 else None  # a foreign tag: not ours
        if image.id in self.children:
            return None  # a build intermediate: goes with the image built on it
        if any(label in image.labels for label in self.scope.stage_labels):
            return "stage"
        return None

    def ancestors(self, image_id: str) -> list[str]:
        out: list[str] = []
        parent = self.images[image_id].parent
        while parent in self.images and parent not in out:
            out.append(parent)
            parent = self.images[parent].parent
        return out

    def _own_last_use(self, image: StoredImage) -> float:
        recorded = [self.used_at[t] for t in image.tags if t in self.used_at]
        return max(recorded) if recorded else image.created

    def _last_used(self) -> dict[str, float]:
        last: dict[str, float] = {}
        for image_id in self.kinds:
            when = self._own_last_use(self.images[image_id])
            for i in [image_id, *self.ancestors(image_id)]:
                last[i] = max(last.get(i, when), when)
        return last

    def exclusive_size(self, image_id: str) -> int:
        """Bytes of ``image_id`` beyond the nearest tagged image it is built on."""
        for ancestor in self.ancestors(image_id):
            if self.images[ancestor].tags:
                return max(0, self.images[image_id].size - self.images[ancestor].size)
        return self.images[image_id].size

    def total_size(self) -> int:
        """Bytes of all our images."""
        return sum(self.exclusive_size(i) for i in self.kinds)

    def protected(self, removed: set[str]) -> set[str]:
        """Images that must stay if ``removed`` go: used by a container, or built upon by
        an image that stays (tagged, leftover or in use)."""
        stay = {i for i, image in self.images.items()
                if i not in removed and (image.tags or i not in self.children)}
        out: set[str] = set(self.in_use)
        for image_id in stay | self.in_use:
            out.update(self.ancestors(image_id))
        return out

    def removal(self, image_id: str, now: float) -> ImageRemoval:
        image = self.images[image_id]
        name = image.tags[0] if image.tags else image_id.removeprefix("sha256:")[:12]
        return ImageRemoval(self.kinds[image_id], name, image_id, image.tags,
                            self.exclusive_size(image_id),
                            max(0.0, now - self.last_used[image_id]))

    def depth(self, image_id: str) -> int:
        return len(self.ancestors(image_id))


def plan_prune(
    store: Store, kinds: Iterable[str], now: float, max_idle_s: float
) -> list[ImageRemoval]:
    """Our images of ``kinds`` unused for longer than ``max_idle_s``, images built on
    others first."""
    wanted = set(kinds)
    removed = {i for i, kind in store.kinds.items()
               if kind in wanted and now - store.last_used[i] > max_idle_s}
    while True:
        keep = removed & (store.protected(removed) | store.in_use)
        if not keep:
            break
        removed -= keep
    ordered = sorted(removed, key=lambda i: (-store.depth(i), store.last_used[i], i))
    return [store.removal(i, now) for i in ordered]


def plan_budget(
    store: Store,
    budget: int,
    now: float,
    keep: Iterable[str] = (),
    kinds: Iterable[str] = EVICTED_KINDS,
) -> list[ImageRemoval]:
    """Least recently used images of ``kinds`` to remove until our images take at most
    ``budget`` bytes; never one in ``keep`` (ids), in use, or still built upon. Fewer (or
    none) when nothing more may go."""
    wanted = set(kinds)
    total = store.total_size()
    removed: set[str] = set()
    kept = set(keep)
    for image_id in list(kept):
        kept.update(store.ancestors(image_id))
    plan: list[ImageRemoval] = []
    while total > budget:
        guarded = store.protected(removed) | kept
        candidates = [i for i, kind in store.kinds.items()
                      if kind in wanted and i not in removed and i not in guarded]
        if not candidates:
            break
        victim = min(candidates, key=lambda i: (store.last_used[i], -store.depth(i), i))
        removed.add(victim)
        plan.append(store.removal(victim, now))
        total -= plan[-1].size
    return plan
