"""Owner references and pods from templates: what the workload controllers share."""

from __future__ import annotations

import copy
from typing import Any

from shoal.api import Kind, Object

TERMINAL_PHASES = ("Succeeded", "Failed")


def owner_reference(kind: Kind, owner: Object) -> dict[str, Any]:
    """A controller reference from a dependent to ``owner`` (blocks the owner's foreground
    deletion until the dependent is gone, as Kubernetes' controllers set it)."""
    meta = owner["metadata"]
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Object) -> dict[str, Any] | None:
    """The owner reference marked ``controller: true``, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return dict(ref)
    return None


def is_controlled_by(obj: Object, owner: Object) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def pod_from_template(
    template: Object,
    owner_kind: Kind,
    owner: Object,
    *,
    name_prefix: str = "",
    extra_labels: dict[str, str] | None = None,
) -> Object:
    """A new Pod for ``owner`` from its pod template: the template's labels, annotations and
    spec, a generated name, and a controller reference."""
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
    pod_meta: dict[str, Any] = {
        "generateName": name_prefix or f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace"),
        "labels": labels,
        "ownerReferences": [owner_reference(owner_kind, owner)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def is_active(pod: Object) -> bool:
    """Counts towards a controller's replicas: not finished, not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in TERMINAL_PHASES and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Object) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False
