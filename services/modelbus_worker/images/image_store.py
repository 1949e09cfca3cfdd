"""The engine's image store as ``retention`` sees it, removals, and the worker's budget."""

from __future__ import annotations

import time
from typing import Any

import docker.errors

from modelbus_delivery.logs import get_logger
from modelbus_worker.images.retention import Scope, Store, StoredImage, plan_budget
from modelbus_worker.images.usage import UsageRecords
from modelbus_worker.quantities import format_size
from modelbus_worker.settings import ContainerSettings

log = get_logger("modelbus_worker.images.image_store")


def read_store(client: Any, usage: UsageRecords, scope: Scope | None = None) -> Store:
    """Every image (intermediates too), the images of every container, the usage records."""
    images = [
        StoredImage(
            id=str(raw["Id"]),
            parent=str(raw.get("ParentId") or ""),
            tags=tuple(t for t in raw.get("RepoTags") or () if t != "<none>:<none>"),
            size=int(raw.get("Size") or 0),
            created=float(raw.get("Created") or 0),
            labels=dict(raw.get("Labels") or {}),
        )
        for raw in client.api.images(all=True)
    ]
    in_use = {str(c.get("ImageID")) for c in client.api.containers(all=True)}
    return Store(images, in_use, usage.image_times(), scope)


def remove_image(client: Any, usage: UsageRecords, image_id: str, tags: tuple[str, ...]) -> bool:
    """Remove an image (tag by tag; the last one deletes it). ``False`` if the engine
    refused because a container started using it meanwhile; already gone is fine."""
    try:
        for tag in tags or (image_id,):
            client.images.remove(tag)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # conflict: in use, or built upon
            log.info("image_kept_in_use", image=tags[0] if tags else image_id,
                     reason=str(exc.explanation))
            return False
        raise
    for tag in tags:
        usage.forget_image(tag)
    return True


def keep_under_budget(
    client: Any,
    settings: ContainerSettings,
    keep: str,
    scope: Scope | None = None,
) -> int:
    """Remove least recently used images until ours fit in ``settings.image_budget``; never
    ``keep`` (a tag), one a container uses, or one still built upon. Returns bytes freed."""
    if settings.image_budget is None:
        return 0
    usage = UsageRecords(settings.cache_dir)
    store = read_store(client, usage, scope)
    keep_ids = [client.images.get(keep).id]
    plan = plan_budget(store, settings.image_budget, time.time(), keep=keep_ids)
    freed = 0
    for item in plan:
        if remove_image(client, usage, item.image_id, item.tags):
            freed += item.size
            log.info("image_evicted", image=item.name, kind=item.kind, bytes=item.size,
                     idle_s=round(item.idle_s), budget=format_size(settings.image_budget))
    total = store.total_size() - freed
    if plan or total > settings.image_budget:
        level = log.info if total <= settings.image_budget else log.warning
        level("image budget", total=format_size(total),
              budget=format_size(settings.image_budget), evicted=len(plan))
    return freed
