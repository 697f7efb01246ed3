"""Clients of the API: over HTTP (``HttpClient``) or in the same process
(``shoal.client.local.LocalClient``, not imported here: it brings the whole server with it)."""

from shoal.client._interface import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    Client,
    WatchEvent,
    object_namespace,
    object_path,
)
from shoal.client.http import HttpClient

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "Client",
    "HttpClient",
    "WatchEvent",
    "object_namespace",
    "object_path",
]
