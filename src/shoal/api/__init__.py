"""The object model: kinds and their schemas, defaults and validation; selectors; patches.

``REGISTRY`` holds every built-in kind; the server, the clients and the CLI all read it.
"""

from shoal.api.kind import Column, Kind, Object, Scale
from shoal.api.kinds import ALL_KINDS
from shoal.api.registry import Registry

REGISTRY = Registry(ALL_KINDS)

__all__ = ["ALL_KINDS", "REGISTRY", "Column", "Kind", "Object", "Registry", "Scale"]
