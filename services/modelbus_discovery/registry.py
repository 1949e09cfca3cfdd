"""MLflow Model Registry adapter: lists every READY version that carries the discovery tag.

A version counts when the tag is on its registered model or on the version itself. The
listing is all-or-nothing: any registry error propagates, so a partial listing can never
make discovery announce removals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mlflow import MlflowClient

from .changes import VersionSnapshot
from .recent import ModelState


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _paged(search: Callable[..., Any], page_size: int, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(max_results=page_size, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def _aliases(rm: Any) -> list[tuple[str, str]]:
    """(alias, version) of a registered model."""
    aliases = rm.aliases or {}
    if isinstance(aliases, dict):
        return [(a, str(v)) for a, v in aliases.items()]
    return [(a.alias, str(a.version)) for a in aliases]  # older clients return alias objects


class MlflowRegistry:
    """Reads tagged model versions from an MLflow tracking/registry server."""

    def __init__(self, tracking_uri: str, tag: str = "datagrok", page_size: int = 100) -> None:
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._tag = tag
        self._page_size = page_size

    def tagged_versions(self) -> list[VersionSnapshot]:
        """Every READY version whose registered model or own tags carry the tag."""
        tag_filter = f"tags.`{self._tag}` LIKE '%'"
        models: dict[str, Any] = {
            rm.name: rm
            for rm in _paged(
                self._client.search_registered_models, self._page_size, filter_string=tag_filter
            )
        }
        versions: dict[tuple[str, str], Any] = {}
        for name in models:
            for mv in _paged(
                self._client.search_model_versions,
                self._page_size,
                filter_string=f"name = {_quote(name)}",
            ):
                versions[(mv.name, str(mv.version))] = mv
        for mv in _paged(
            self._client.search_model_versions, self._page_size, filter_string=tag_filter
        ):
            if mv.name not in models:
                models[mv.name] = self._client.get_registered_model(mv.name)
            versions[(mv.name, str(mv.version))] = mv
        return [
            self._snapshot(models[name], mv)
            for (name, _), mv in sorted(versions.items())
            if mv.status == "READY"
        ]

    def tagged_versions_of(self, name: str) -> list[VersionSnapshot]:
        """The READY versions of registered model ``name`` alone that carry the tag (through
        the model or their own tags); none when the model is gone."""
        models = [
            rm
            for rm in self._client.search_registered_models(
                filter_string=f"name = {_quote(name)}"
            )
            if rm.name == name
        ]
        if not models:
            return []
        model_tagged = self._tag in (models[0].tags or {})
        return [
            self._snapshot(models[0], mv)
            for mv in _paged(
                self._client.search_model_versions,
                self._page_size,
                filter_string=f"name = {_quote(name)}",
            )
            if mv.status == "READY" and (model_tagged or self._tag in (mv.tags or {}))
        ]

    def recently_updated_models(self, limit: int) -> list[ModelState]:
        """The ``limit`` most recently updated registered models, tagged or not (so that a
        removed tag shows), newest first: one request."""
        return [
            ModelState(
                name=rm.name,
                last_updated=int(rm.last_updated_timestamp or 0),
                tags=tuple(sorted((rm.tags or {}).items())),
                aliases=tuple(sorted(_aliases(rm))),
                latest_version_tags=tuple(sorted(
                    (str(mv.version), tuple(sorted((mv.tags or {}).items())))
                    for mv in rm.latest_versions or ()
                )),
            )
            for rm in self._client.search_registered_models(
                order_by=["last_updated_timestamp DESC", "name ASC"], max_results=limit
            )
        ]

    @staticmethod
    def _snapshot(rm: Any, mv: Any) -> VersionSnapshot:
        names = tuple(sorted(a for a, v in _aliases(rm) if v == str(mv.version)))
        return VersionSnapshot(
            name=mv.name,
            version=str(mv.version),
            model_tags=dict(rm.tags or {}),
            version_tags=dict(mv.tags or {}),
            aliases=names,
            run_id=mv.run_id or None,
            source=mv.source or None,
        )
