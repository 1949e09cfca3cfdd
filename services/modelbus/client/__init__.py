"""modelbus client: send prediction requests and read the catalog over plain Kafka."""

from modelbus.catalog_view import CatalogChange
from modelbus.contract import CatalogEntry
from modelbus.errors import ModelbusError

from .async_client import AsyncModelbusClient
from .sync_client import ModelbusClient

__all__ = [
    "AsyncModelbusClient",
    "CatalogChange",
    "CatalogEntry",
    "ModelbusClient",
    "ModelbusError",
]
