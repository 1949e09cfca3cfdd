"""The client SDK under its former name: ``from modelbus.client import ModelbusClient``.

The client is its own package, ``modelbus_client``; this module only re-exports its public
names so that existing imports keep working.
"""

from modelbus_client import (
    AsyncModelbusClient,
    CatalogChange,
    CatalogEntry,
    Chunk,
    ChunkResult,
    ClientClosed,
    ModelbusClient,
    ModelbusError,
    Prediction,
    Progress,
)

__all__ = [
    "AsyncModelbusClient",
    "CatalogChange",
    "CatalogEntry",
    "Chunk",
    "ChunkResult",
    "ClientClosed",
    "ModelbusClient",
    "ModelbusError",
    "Prediction",
    "Progress",
]
