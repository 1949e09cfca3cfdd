"""modelbus client: send prediction requests and read the catalog over plain Kafka."""

from modelbus_contract.errors import ModelbusError
from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.catalog_view import CatalogChange

from .async_client import AsyncModelbusClient
from .progress import Progress
from .results_listener import ClientClosed
from .sync_client import ModelbusClient

__all__ = [
    "AsyncModelbusClient",
    "CatalogChange",
    "CatalogEntry",
    "ClientClosed",
    "ModelbusClient",
    "ModelbusError",
    "Progress",
]
