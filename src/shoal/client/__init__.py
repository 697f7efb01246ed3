"""Clients of the API: over HTTP (``HttpClient``) or in the same process (``LocalClient``)."""

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
from shoal.client.local import LocalClient

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "Client",
    "HttpClient",
    "LocalClient",
    "WatchEvent",
    "object_namespace",
    "object_path",
]
