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

    @staticmethod
    def _snapshot(rm: Any, mv: Any) -> VersionSnapshot:
        aliases = rm.aliases or {}
        if isinstance(aliases, dict):
            names = tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version)))
        else:  # older clients return alias objects
            names = tuple(sorted(a.alias for a in aliases if str(a.version) == str(mv.version)))
        return VersionSnapshot(
            name=mv.name,
            version=str(mv.version),
            model_tags=dict(rm.tags or {}),
            version_tags=dict(mv.tags or {}),
            aliases=names,
            run_id=mv.run_id or None,
            source=mv.source or None,
        )
