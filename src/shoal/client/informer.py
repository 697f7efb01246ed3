"""Informers: a read-only cache of one kind kept current by list + watch.

An informer lists the objects, then watches from the list's resourceVersion, applying each
event to its cache and telling its handlers (which should only enqueue keys). When the
watch is too old (410 Expired) it lists again and tells the handlers what changed in
between; when the server is unreachable it retries with back-off. Objects in the cache are
shared: copy one before changing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shoal.api import Kind, Object
from shoal.api.errors import ApiError, Expired
from shoal.client._interface import Client

log = logging.getLogger(__name__)

# A handler is told (old, new): (None, obj) added, (old, new) updated, (old, None) deleted.
Handler = Callable[[Object | None, Object | None], None]


def object_key(obj: Object) -> str:
    """``namespace/name`` for namespaced objects, ``name`` otherwise: the queue key."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return (namespace or None), name


class Informer:
    def __init__(
        self,
        client: Client,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        max_backoff: float = 10.0,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.synced = asyncio.Event()  # set once the first list is in the cache
        self._cache: dict[str, Object] = {}
        self._handlers: list[Handler] = []
        self._max_backoff = max_backoff

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)
        for obj in self._cache.values():
            handler(None, obj)

    def get(self, key: str) -> Object | None:
        return self._cache.get(key)

    def list(self) -> list[Object]:
        return list(self._cache.values())

    async def run(self) -> None:
        """List and watch until cancelled."""
        backoff = 0.1
        while True:
            try:
                revision = await self._relist()
                backoff = 0.1
                while True:  # a watch that ends cleanly resumes from where it was
                    revision = await self._watch(revision)
            except Expired:
                continue  # history is gone: list again
            except ApiError as err:
                log.warning("%s informer: %s; retrying in %.1fs", self.kind.resource, err, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _relist(self) -> str:
        listed = await self.client.list(
            self.kind, self.namespace, label_selector=self.label_selector, field_selector=self.field_selector
        )
        fresh = {object_key(obj): obj for obj in listed["items"]}
        old = self._cache
        self._cache = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None or before["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._notify(before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._notify(obj, None)
        self.synced.set()
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, revision: str) -> str:
        async for event in self.client.watch(
            self.kind,
            self.namespace,
            resource_version=revision,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        ):
            obj = event.object
            key = object_key(obj)
            revision = str(obj["metadata"].get("resourceVersion", revision))
            if event.type == "DELETED":
                before = self._cache.pop(key, None)
                self._notify(before or obj, None)
            elif event.type in ("ADDED", "MODIFIED"):
                before = self._cache.get(key)
                self._cache[key] = obj
                self._notify(before, obj)
        return revision

    def _notify(self, old: Object | None, new: Object | None) -> None:
        for handler in self._handlers:
            handler(old, new)


class Informers:
    """One shared informer per kind, so controllers watching the same kind share a cache."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._by_kind: dict[str, Informer] = {}

    def of(self, kind: Kind) -> Informer:
        informer = self._by_kind.get(kind.resource)
        if informer is None:
            informer = self._by_kind[kind.resource] = Informer(self.client, kind)
        return informer

    def all(self) -> list[Informer]:
        return list(self._by_kind.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for informer in self.all():
                tasks.create_task(informer.run(), name=f"informer {informer.kind.resource}")

    async def wait_synced(self) -> None:
        for informer in self.all():
            await informer.synced.wait()
