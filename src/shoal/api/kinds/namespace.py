"""Namespace (core/v1): a scope for names, and the unit of deletion of everything in it.

Defaults: the ``kubernetes.io/metadata.name`` label carries the namespace's name (so that
namespace selectors can pick a namespace by name); ``spec.finalizers`` holds ``kubernetes``
while the namespace lives (the namespace controller removes it once the contents are
gone); ``status.phase`` is Active.

Names are DNS-1123 labels: a namespace name becomes part of DNS names.
"""

from __future__ import annotations

from shoal.api.errors import FieldError, invalid
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import TIME, top_level
from shoal.api.schema import Arr, Obj, Str
from shoal.api.validation import check, dns1123_label, qualified_name

NAME_LABEL = "kubernetes.io/metadata.name"
FINALIZER = "kubernetes"
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")

NAMESPACE_CONDITION = Obj(
    "io.k8s.api.core.v1.NamespaceCondition",
    {"lastTransitionTime": TIME, "message": Str(), "reason": Str(), "status": Str(), "type": Str()},
    required=("type", "status"),
)


def default(obj: Object) -> None:
    meta = obj.setdefault("metadata", {})
    if meta.get("name"):  # not yet known with generateName: the server sets it later
        meta.setdefault("labels", {})[NAME_LABEL] = meta["name"]
    finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
    if FINALIZER not in finalizers and not meta.get("deletionTimestamp"):
        finalizers.append(FINALIZER)
    obj.setdefault("status", {}).setdefault("phase", "Active")


def validate(obj: Object) -> list[FieldError]:
    errors: list[FieldError] = []
    for finalizer in dig(obj, "spec", "finalizers", default=[]):
        errors += check("spec.finalizers", finalizer, qualified_name)
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            detail = "name is neither a standard finalizer name nor is it fully qualified"
            errors.append(invalid("spec.finalizers", finalizer, detail))
    return errors


NAMESPACE = Kind(
    group="",
    version="v1",
    kind="Namespace",
    plural="namespaces",
    singular="namespace",
    namespaced=False,
    short_names=("ns",),
    name_rule=dns1123_label,
    schema=top_level(
        "io.k8s.api.core.v1.Namespace",
        spec=Obj("io.k8s.api.core.v1.NamespaceSpec", {"finalizers": Arr(Str())}),
        status=Obj(
            "io.k8s.api.core.v1.NamespaceStatus",
            {
                "conditions": Arr(
                    NAMESPACE_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)
                ),
                "phase": Str(enum=("Active", "Terminating")),
            },
        ),
    ),
    columns=(
        NAME,
        Column("Status", lambda o: dig(o, "status", "phase", default="")),
        AGE,
    ),
    default=default,
    validate=validate,
    field_selectors={"status.phase": lambda o: str(dig(o, "status", "phase", default=""))},
)
