"""Kubernetes URL layout: which kind, namespace, name and subresource a path names.

/api/v1/{plural}[/{name}[/{sub}]]
/api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]
/apis/{group}/{version}/...                  (the same below the group version)
/api/v1/watch/...                            (legacy watch paths, as ?watch=1)
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.api import REGISTRY, Kind
from shoal.api.errors import NotFound

SUBRESOURCES = ("status", "scale", "binding", "log", "exec")


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    namespace: str | None  # None: cluster-scoped kind, or a namespaced kind across all namespaces
    name: str  # "" for collections
    subresource: str  # "" for the object itself
    legacy_watch: bool = False


def resolve(group: str, version: str, segments: list[str]) -> Target:
    """The target of a path below ``/api/v1`` or ``/apis/{group}/{version}``."""
    legacy_watch = bool(segments) and segments[0] == "watch"
    if legacy_watch:
        segments = segments[1:]
    if not segments or "" in segments:
        raise NotFound("the server could not find the requested resource")
    namespace: str | None = None
    if segments[0] == "namespaces" and len(segments) >= 3:
        candidate = REGISTRY.by_resource(group, version, segments[2])
        if candidate is not None and candidate.namespaced:
            namespace = segments[1]
            segments = segments[2:]
    kind = REGISTRY.by_resource(group, version, segments[0])
    if kind is None:
        raise NotFound("the server could not find the requested resource")
    if len(segments) > 3:
        raise NotFound("the server could not find the requested resource")
    name = segments[1] if len(segments) > 1 else ""
    sub = segments[2] if len(segments) > 2 else ""
    if sub and (
        (sub == "binding" and not kind.bindable)
        or sub not in SUBRESOURCES
        or (sub == "status" and not kind.has_status)
        or (sub == "scale" and kind.scale is None)
        or (sub in ("log", "exec") and (kind.group, kind.resource) != ("", "pods"))
    ):
        raise NotFound(f'the server could not find the requested resource ({kind.resource} "{name}"/{sub})')
    return Target(kind, namespace, name, sub, legacy_watch)
