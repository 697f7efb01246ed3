"""What every client offers: the verbs of the Kubernetes API on declared kinds.

``HttpClient`` speaks to a server over HTTP; ``LocalClient`` calls the server's resource
layer in the same process (same admission, no serialisation). Both raise the errors of
``shoal.api.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from shoal.api import Kind, Object

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Object


class Client(Protocol):
    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Object: ...

    async def list(
        self, kind: Kind, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> Object: ...

    async def create(
        self, kind: Kind, obj: Object, namespace: str | None = None, *, dry_run: bool = False
    ) -> Object: ...

    async def update(
        self, kind: Kind, obj: Object, *, subresource: str = "", dry_run: bool = False
    ) -> Object: ...

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
    ) -> Object: ...

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, propagation_policy: str = ""
    ) -> Object: ...

    async def bind(self, kind: Kind, name: str, namespace: str | None, node: str) -> None:
        """Assign a Pod to a node through its ``binding`` subresource."""
        ...

    def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]: ...

    async def close(self) -> None: ...


def object_namespace(kind: Kind, obj: Object, namespace: str | None) -> str | None:
    """The namespace a write goes to: the argument, else the object's own, else default."""
    if not kind.namespaced:
        return None
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    from_obj = meta.get("namespace") if isinstance(meta, dict) else None
    return namespace or from_obj or "default"


def binding(name: str, node: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def object_path(kind: Kind, namespace: str | None, name: str = "", subresource: str = "") -> str:
    """The URL path of a collection, an object or a subresource."""
    base = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    if kind.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{kind.plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path
