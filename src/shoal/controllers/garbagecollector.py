"""The garbage collector: deletes dependents whose owners are gone, and carries out the
Orphan and Foreground propagation policies (Kubernetes' semantics).

Vocabulary: an object's ``metadata.ownerReferences`` name its *owners* (apiVersion, kind,
name, uid); the object is their *dependent*. An owner is *gone* when no object of that kind
and name exists in the dependent's namespace (by name alone for cluster-scoped owners), or
the one that exists has another uid (it was deleted and re-created).

- Background (the server's default): the owner goes at once; each dependent whose owners
  are all gone is then deleted, itself with Background so the deletion cascades. A
  dependent with only some owners gone loses the dangling references.
- Orphan: the server sets ``deletionTimestamp`` and the ``orphan`` finalizer; the collector
  removes the owner's reference from every dependent, then the finalizer, and the server
  deletes the owner.
- Foreground: the server sets the ``foregroundDeletion`` finalizer; the collector deletes
  the dependents with Foreground (so the whole tree goes bottom-up) and removes the
  finalizer once no dependent whose reference has ``blockOwnerDeletion`` remains. A
  dependent that is being deleted still blocks until it is gone.

Queue keys name one object: ``apiVersion/Kind/namespace/name``, the namespace empty for
cluster-scoped kinds (``apps/v1/ReplicaSet/default/web``, ``v1/Node//node-1``); see
``gc_graph``. Owners are found in the informers' caches first; a cache may lag, so an owner
that looks gone there is confirmed with a live GET before anything is deleted.

Left out (as documented limits, not accidents): a dependent created so recently that no
informer has seen it can be missed by an owner's Orphan or Foreground pass (Kubernetes has
the same window); deletes carry no uid precondition (the Client has none), so a dependent
is re-read just before it is deleted; cycles of Foreground deletions are not broken.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import NotFound
from shoal.client import MERGE_PATCH, Client
from shoal.client.informer import Handler, Informer, Informers
from shoal.controllers._controller import Controller
from shoal.controllers.gc_graph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    DependentIndex,
    Owner,
    cache_key,
    classify,
    finalizers,
    gc_key,
    is_deleting,
    owner_kind,
    owner_refs,
    parse_key,
)

log = logging.getLogger(__name__)

BACKGROUND, FOREGROUND = "Background", "Foreground"


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, client: Client, informers: Informers) -> None:
        super().__init__()
        self.client = client
        self.graph = DependentIndex()
        # Every kind may own and be owned, so the collector watches them all.
        self._informers: dict[tuple[str, str], Informer] = {}
        for kind in REGISTRY.kinds:
            informer = informers.of(kind)
            self._informers[(kind.api_version, kind.kind)] = informer
            informer.add_handler(self._handler(kind))

    async def run(self, workers: int = 1) -> None:
        # Before every kind is listed most owners look missing, and each would cost a live
        # GET to confirm: start work once the caches hold the cluster.
        for informer in self._informers.values():
            await informer.synced.wait()
        await super().run(workers)

    # -- events: keep the index, enqueue keys --------------------------------------------------

    def _handler(self, kind: Kind) -> Handler:
        def handle(old: Object | None, new: Object | None) -> None:
            self._on_change(kind, old, new)

        return handle

    def _on_change(self, kind: Kind, old: Object | None, new: Object | None) -> None:
        obj = new or old
        assert obj is not None
        meta = obj["metadata"]
        key = gc_key(kind, meta.get("namespace"), meta["name"])
        old_refs, new_refs = owner_refs(old), owner_refs(new)
        self.graph.update(key, old_refs, new_refs)
        if new is not None and (new_refs or (is_deleting(new) and self._propagating(new))):
            # Cheap when nothing is to do: reconcile consults the caches before the API.
            self.queue.add(key)
        if old is not None and (new is None or _deletion_changed(old, new)):
            # The owner went, was replaced, or started deleting: its dependents may have to go.
            for dependent in self.graph.dependents(old["metadata"].get("uid")):
                self.queue.add(dependent)
        if old is not None and (new is None or old_refs != new_refs):
            # A dependent went or dropped a reference: an owner may be waiting for that.
            for owner_key in self._owner_keys(meta.get("namespace"), old_refs):
                self.queue.add(owner_key)

    def _owner_keys(self, namespace: str | None, refs: list[dict[str, Any]]) -> list[str]:
        keys = []
        for ref in refs:
            kind = owner_kind(ref)
            if kind is not None and isinstance(ref.get("name"), str):
                keys.append(gc_key(kind, namespace if kind.namespaced else None, ref["name"]))
        return keys

    @staticmethod
    def _propagating(obj: Object) -> bool:
        return bool({ORPHAN_FINALIZER, FOREGROUND_FINALIZER} & set(finalizers(obj)))

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        parsed = parse_key(key)
        if parsed is None:
            log.warning("garbagecollector: ignoring key %r of an unknown kind", key)
            return
        kind, namespace, name = parsed
        obj = self._informer(kind).get(cache_key(namespace, name))
        if obj is None:
            return  # gone: its dependents were enqueued when it went
        if is_deleting(obj):
            if ORPHAN_FINALIZER in finalizers(obj):
                await self._orphan_dependents(kind, obj)
            elif FOREGROUND_FINALIZER in finalizers(obj):
                await self._delete_dependents_first(kind, obj)
            return
        if owner_refs(obj):
            await self._collect_if_owners_gone(kind, obj)

    def _informer(self, kind: Kind) -> Informer:
        return self._informers[(kind.api_version, kind.kind)]

    # -- Background: dependents whose owners are gone ------------------------------------------

    async def _collect_if_owners_gone(self, kind: Kind, cached: Object) -> None:
        namespace = cached["metadata"].get("namespace")
        if all(self._cached_state(namespace, ref) is Owner.SOLID for ref in owner_refs(cached)):
            return  # the common case (every status update of every pod): no API call
        latest = await self._get(kind, namespace, cached["metadata"]["name"])
        if latest is None or latest["metadata"].get("uid") != cached["metadata"].get("uid"):
            return  # gone, or a new object of that name: its own events bring it here
        if is_deleting(latest):
            return  # already going; a propagation finalizer has its own events
        refs = owner_refs(latest)
        states = [await self._live_state(namespace, ref) for ref in refs]
        if Owner.SOLID in states:
            if all(state is Owner.SOLID for state in states):
                return
            # Kept alive by another owner: drop the references to the gone ones (and to
            # owners waiting in the foreground, so that they need not wait for this one).
            kept = [ref for ref, state in zip(refs, states, strict=True) if state is Owner.SOLID]
            await self._set_owner_refs(kind, latest, kept)
            return
        policy = FOREGROUND if Owner.WAITING in states else BACKGROUND
        log.info(
            "garbagecollector: deleting %s %s (%s), its owners are gone", kind.kind, _name(latest), policy
        )
        with contextlib.suppress(NotFound):
            await self.client.delete(kind, latest["metadata"]["name"], namespace, propagation_policy=policy)

    def _cached_state(self, namespace: str | None, ref: dict[str, Any]) -> Owner:
        kind = owner_kind(ref)
        if kind is None or not ref.get("uid"):
            return Owner.SOLID  # cannot be checked: never collect on what we cannot see
        if kind.namespaced and namespace is None:
            return Owner.DANGLING  # a cluster-scoped object cannot have a namespaced owner
        owner_ns = namespace if kind.namespaced else None
        return classify(ref, self._informer(kind).get(cache_key(owner_ns, str(ref.get("name")))))

    async def _live_state(self, namespace: str | None, ref: dict[str, Any]) -> Owner:
        """As ``_cached_state``, but asking the API server: a cache that has not yet seen
        an owner (or still shows its predecessor) must not get a dependent deleted."""
        kind = owner_kind(ref)
        if kind is None or not ref.get("uid"):
            return Owner.SOLID
        if kind.namespaced and namespace is None:
            return Owner.DANGLING
        owner = await self._get(kind, namespace if kind.namespaced else None, str(ref.get("name")))
        return classify(ref, owner)

    # -- Orphan: release the dependents, then let the owner go ---------------------------------

    async def _orphan_dependents(self, kind: Kind, owner: Object) -> None:
        uid = owner["metadata"]["uid"]
        for dependent_key in self.graph.dependents(uid):
            parsed = parse_key(dependent_key)
            if parsed is None:
                continue
            dep_kind, dep_ns, dep_name = parsed
            latest = await self._get(dep_kind, dep_ns, dep_name)
            if latest is None:
                continue
            refs = owner_refs(latest)
            kept = [ref for ref in refs if ref.get("uid") != uid]
            if len(kept) != len(refs):
                await self._set_owner_refs(dep_kind, latest, kept)
        await self._remove_finalizer(kind, owner, ORPHAN_FINALIZER)

    # -- Foreground: the dependents first, then the owner --------------------------------------

    async def _delete_dependents_first(self, kind: Kind, owner: Object) -> None:
        uid = owner["metadata"]["uid"]
        blocked = False
        for dependent_key in self.graph.dependents(uid):
            parsed = parse_key(dependent_key)
            if parsed is None:
                continue
            dep_kind, dep_ns, dep_name = parsed
            dependent = self._informer(dep_kind).get(cache_key(dep_ns, dep_name))
            if dependent is None:
                continue
            refs = [ref for ref in owner_refs(dependent) if ref.get("uid") == uid]
            if not refs:
                continue
            # One that is already being deleted still blocks until it is gone.
            blocked = blocked or any(ref.get("blockOwnerDeletion") is True for ref in refs)
            if not is_deleting(dependent):
                # Its reconcile deletes it with Foreground, or only drops this reference
                # when another owner keeps it.
                self.queue.add(dependent_key)
        if not blocked:
            await self._remove_finalizer(kind, owner, FOREGROUND_FINALIZER)

    # -- writes --------------------------------------------------------------------------------

    async def _set_owner_refs(self, kind: Kind, latest: Object, refs: list[dict[str, Any]]) -> None:
        """Replace the owner references, compare-and-swap on the resourceVersion read: a
        write in between raises Conflict and the key is retried on fresh data."""
        meta = latest["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "ownerReferences": refs or None}}
        with contextlib.suppress(NotFound):
            await self.client.patch(kind, meta["name"], patch, meta.get("namespace"), patch_type=MERGE_PATCH)

    async def _remove_finalizer(self, kind: Kind, owner: Object, finalizer: str) -> None:
        """Remove ``finalizer`` from the live owner; removing the last one lets the server
        delete it. Pinned to the resourceVersion read, as above."""
        meta = owner["metadata"]
        latest = await self._get(kind, meta.get("namespace"), meta["name"])
        if latest is None or latest["metadata"].get("uid") != meta.get("uid"):
            return
        current = finalizers(latest)
        if finalizer not in current:
            return
        log.info("garbagecollector: %s %s may go now (%s done)", kind.kind, _name(latest), finalizer)
        rest = [f for f in current if f != finalizer]
        patch = {"metadata": {"resourceVersion": latest["metadata"]["resourceVersion"], "finalizers": rest}}
        with contextlib.suppress(NotFound):
            await self.client.patch(kind, meta["name"], patch, meta.get("namespace"), patch_type=MERGE_PATCH)

    async def _get(self, kind: Kind, namespace: str | None, name: str) -> Object | None:
        try:
            return await self.client.get(kind, name, namespace if kind.namespaced else None)
        except NotFound:
            return None


def _deletion_changed(old: Object, new: Object) -> bool:
    before, after = old["metadata"], new["metadata"]
    return (
        before.get("uid") != after.get("uid")
        or bool(before.get("deletionTimestamp")) != bool(after.get("deletionTimestamp"))
        or before.get("finalizers") != after.get("finalizers")
    )


def _name(obj: Object) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])
