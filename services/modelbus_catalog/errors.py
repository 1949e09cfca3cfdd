"""What reading a model version from the registry can fail with, in the catalog's terms.

The MLflow adapter (``reader.py``) raises these by the type of what MLflow and its HTTP
client raised; the service decides on them by type alone.
"""

from __future__ import annotations


class ModelUnreadable(Exception):
    """The version's files are missing or malformed; asking again will not help."""


class RegistryUnreachable(Exception):
    """The registry cannot be reached now (down, timing out, overloaded) or refuses the
    credentials: the operator's to fix, so the read waits for it like for an outage."""
