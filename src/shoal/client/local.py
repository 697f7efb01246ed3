"""The in-process client: the same verbs and admission as HTTP, without serialisation.

Components inside the manager (controllers, scheduler) use it; objects are copied on the
way in and out so that no caller shares a dict with the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from shoal.api import Kind, Object
from shoal.client._interface import MERGE_PATCH, WatchEvent, binding, object_namespace
from shoal.server.resources import ListOptions, Resources, WriteOptions


def _copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


class LocalClient:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Object:
        return await self.resources.get(kind, object_namespace(kind, {}, namespace), name)

    async def list(
        self, kind: Kind, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> Object:
        options = ListOptions(label_selector=label_selector, field_selector=field_selector)
        return await self.resources.list(kind, namespace, options)

    async def create(
        self, kind: Kind, obj: Object, namespace: str | None = None, *, dry_run: bool = False
    ) -> Object:
        ns = object_namespace(kind, obj, namespace)
        return await self.resources.create(kind, ns, _copy(obj), WriteOptions(dry_run=dry_run))

    async def update(
        self, kind: Kind, obj: Object, *, subresource: str = "", dry_run: bool = False
    ) -> Object:
        ns = object_namespace(kind, obj, None)
        name = obj["metadata"]["name"]
        return await self.resources.update(
            kind, ns, name, _copy(obj), WriteOptions(dry_run=dry_run), subresource
        )

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
    ) -> Object:
        ns = object_namespace(kind, {}, namespace)
        return await self.resources.patch(
            kind, ns, name, orjson.dumps(patch), patch_type, WriteOptions(), subresource
        )

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, propagation_policy: str = ""
    ) -> Object:
        ns = object_namespace(kind, {}, namespace)
        return await self.resources.delete(kind, ns, name, propagation_policy=propagation_policy)

    async def bind(self, kind: Kind, name: str, namespace: str | None, node: str) -> None:
        ns = object_namespace(kind, {}, namespace)
        await self.resources.bind(kind, ns, name, binding(name, node))

    async def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:
        options = ListOptions(
            label_selector=label_selector, field_selector=field_selector, resource_version=resource_version
        )
        events = self.resources.watch(kind, namespace, options)
        async with contextlib.aclosing(events):
            async for event in events:
                yield WatchEvent(event.type, event.object)

    async def close(self) -> None:
        return None
