"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of an object's replicas."""

from __future__ import annotations

from shoal.api import Kind, Object
from shoal.api.errors import BadRequest, Invalid, invalid
from shoal.api.kinds.columns import dig, selector_text
from shoal.api.patch import apply_patch
from shoal.server.resources import Resources, WriteOptions

SCALE_SCHEMA = None  # a Scale is patched with plain merge semantics


def to_scale(kind: Kind, obj: Object) -> Object:
    assert kind.scale is not None
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": dig(obj, *kind.scale.spec_replicas, default=0)},
        "status": {
            "replicas": dig(obj, *kind.scale.status_replicas, default=0),
            "selector": selector_text(dig(obj, *kind.scale.selector), empty=""),
        },
    }


async def get_scale(res: Resources, kind: Kind, namespace: str | None, name: str) -> Object:
    return to_scale(kind, await res.get(kind, namespace, name))


async def update_scale(
    res: Resources, kind: Kind, namespace: str | None, name: str, scale: Object, options: WriteOptions
) -> Object:
    """Write ``scale.spec.replicas`` into the object, compare-and-swap on the Scale's
    resourceVersion when it carries one."""
    assert kind.scale is not None
    if not isinstance(scale, dict) or not isinstance(scale.get("spec", {}), dict):
        raise BadRequest("the body of a Scale must be a JSON object")
    replicas = scale.get("spec", {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise Invalid.for_object(
            "Scale",
            "autoscaling",
            name,
            [invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
        )
    obj = await res.get(kind, namespace, name)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv:
        obj["metadata"]["resourceVersion"] = str(rv)
    target = obj
    for step in kind.scale.spec_replicas[:-1]:
        target = target.setdefault(step, {})
    target[kind.scale.spec_replicas[-1]] = replicas
    updated = await res.update(kind, namespace, name, obj, options)
    return to_scale(kind, updated)


async def patch_scale(
    res: Resources,
    kind: Kind,
    namespace: str | None,
    name: str,
    body: bytes,
    content_type: str,
    options: WriteOptions,
) -> Object:
    current = await get_scale(res, kind, namespace, name)
    patched = apply_patch(current, body, content_type, SCALE_SCHEMA)
    return await update_scale(res, kind, namespace, name, patched, options)


__all__ = ["get_scale", "patch_scale", "to_scale", "update_scale"]
