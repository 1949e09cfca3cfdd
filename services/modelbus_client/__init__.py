"""The modelbus client: send prediction requests and read the catalog over plain Kafka.

Its own package, on the contract and delivery layers only: it imports ``modelbus_contract``,
the Kafka pieces of ``modelbus_delivery`` (connection options, topics, writer, catalog view,
poison-record handling, fetch pacing, logs) and aiokafka, pyarrow, pydantic and structlog
(OpenTelemetry when installed; pandas DataFrames in, and out of ``predict_df``, when the
caller has pandas) -- never Docker, MLflow, FastStream, Prometheus, the services or the
composition (``modelbus``). The SDK is at this level; ``cli/`` holds the client commands of
the ``modelbus`` CLI (predict, catalog, results, and the operator tools tail and dlq).
``modelbus.client`` re-exports the names below.
"""

from modelbus_contract.errors import ModelbusError
from modelbus_contract.messages import CatalogEntry
from modelbus_delivery.catalog_view import CatalogChange

from .async_client import AsyncModelbusClient
from .chunked_predict import ChunkResult
from .chunking import Chunk
from .prediction import Prediction
from .progress import Progress
from .results_listener import ClientClosed
from .sync_client import ModelbusClient

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
