"""The garbage collector's view of ownership, without I/O: queue keys, how an owner
reference is classified, and the index of dependents.

A queue key names one object of any kind: ``apiVersion/Kind/namespace/name``, the namespace
empty for cluster-scoped kinds. Names and namespaces hold no ``/`` (DNS labels and
subdomains), so the last three ``/`` split it unambiguously even though the apiVersion of a
grouped kind holds one itself: ``apps/v1/ReplicaSet/default/web``, ``v1/Node//node-1``.
Keys name objects rather than uids because the caches are found by name; where a name was
reused, the collector compares uids.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from shoal.api import REGISTRY, Kind, Object
from shoal.server.resources import FOREGROUND_FINALIZER, ORPHAN_FINALIZER

Ref = dict[str, Any]  # one entry of metadata.ownerReferences


def gc_key(kind: Kind, namespace: str | None, name: str) -> str:
    return f"{kind.api_version}/{kind.kind}/{namespace or ''}/{name}"


def parse_key(key: str) -> tuple[Kind, str | None, str] | None:
    """The kind, namespace and name of a key; None for a kind the registry does not know."""
    parts = key.rsplit("/", 3)
    if len(parts) != 4:
        return None
    api_version, kind_name, namespace, name = parts
    kind = REGISTRY.by_kind(api_version, kind_name)
    if kind is None:
        return None
    return kind, (namespace or None) if kind.namespaced else None, name


def cache_key(namespace: str | None, name: str) -> str:
    """The informer's key for an object (``client.informer.object_key``)."""
    return f"{namespace}/{name}" if namespace else name


def owner_refs(obj: Object | None) -> list[dict[str, Any]]:
    if obj is None:
        return []
    refs = obj["metadata"].get("ownerReferences") or []
    return [ref for ref in refs if isinstance(ref, dict)]


def owner_kind(ref: dict[str, Any]) -> Kind | None:
    """The kind a reference names. Another version of a known group and kind is the same
    kind (owners are identified by uid; the version only says how to read them)."""
    api_version, kind_name = ref.get("apiVersion"), ref.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind_name, str):
        return None
    found = REGISTRY.by_kind(api_version, kind_name)
    if found is None and "/" in api_version:
        found = REGISTRY.by_group_kind(api_version.split("/", 1)[0], kind_name)
    return found


class Owner(enum.Enum):
    """What one owner reference amounts to, as Kubernetes' collector classifies it."""

    SOLID = "solid"  # the owner exists and keeps its dependent
    DANGLING = "dangling"  # the owner is gone
    WAITING = "waiting"  # the owner is being deleted in the foreground: its dependents go first


def is_deleting(obj: Object) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def finalizers(obj: Object) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def classify(ref: dict[str, Any], owner: Object | None) -> Owner:
    """The state of ``ref`` given the object found under its kind and name (None: none)."""
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return Owner.DANGLING
    if is_deleting(owner) and FOREGROUND_FINALIZER in finalizers(owner):
        return Owner.WAITING
    return Owner.SOLID


class DependentIndex:
    """Owner uid -> keys of the objects that reference it, kept from informer events.

    An entry says only "this object referenced that uid when last seen": the collector
    re-reads the dependent before acting on it.
    """

    def __init__(self) -> None:
        self._by_owner: dict[str, set[str]] = {}

    def update(
        self, key: str, old_refs: Iterable[dict[str, Any]], new_refs: Iterable[dict[str, Any]]
    ) -> None:
        new_uids = {str(ref["uid"]) for ref in new_refs if ref.get("uid")}
        for ref in old_refs:
            uid = ref.get("uid")
            if uid and uid not in new_uids:
                self._discard(str(uid), key)
        for uid in new_uids:
            self._by_owner.setdefault(uid, set()).add(key)

    def dependents(self, owner_uid: Any) -> list[str]:
        """Keys of the owner's dependents, sorted so that passes are reproducible."""
        if not isinstance(owner_uid, str):
            return []
        return sorted(self._by_owner.get(owner_uid, ()))

    def __len__(self) -> int:
        return len(self._by_owner)

    def _discard(self, uid: str, key: str) -> None:
        keys = self._by_owner.get(uid)
        if keys is None:
            return
        keys.discard(key)
        if not keys:
            del self._by_owner[uid]


__all__ = [
    "FOREGROUND_FINALIZER",
    "ORPHAN_FINALIZER",
    "DependentIndex",
    "Owner",
    "cache_key",
    "classify",
    "finalizers",
    "gc_key",
    "is_deleting",
    "owner_kind",
    "owner_refs",
    "parse_key",
]
