"""Types shared by every kind: ObjectMeta, OwnerReference, LabelSelector, and helpers to
assemble a kind's top-level object schema."""

from __future__ import annotations

from shoal.api.schema import Arr, Bool, Int, Map, Obj, Raw, Schema, Str

TIME = Str(format="date-time")

OWNER_REFERENCE = Obj(
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    {
        "apiVersion": Str(),
        "kind": Str(),
        "name": Str(),
        "uid": Str(),
        "controller": Bool(),
        "blockOwnerDeletion": Bool(),
    },
    required=("apiVersion", "kind", "name", "uid"),
)

OBJECT_META = Obj(
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    {
        "name": Str(),
        "generateName": Str(),
        "namespace": Str(),
        "uid": Str(),
        "resourceVersion": Str(),
        "generation": Int(format="int64"),
        "creationTimestamp": TIME,
        "deletionTimestamp": TIME,
        "deletionGracePeriodSeconds": Int(format="int64"),
        "labels": Map(Str()),
        "annotations": Map(Str()),
        "ownerReferences": Arr(OWNER_REFERENCE, merge_key="uid", strategy="merge", map_keys=("uid",)),
        "finalizers": Arr(Str(), strategy="merge"),
        "managedFields": Arr(Raw()),
        "selfLink": Str(),
    },
)

LABEL_SELECTOR_REQUIREMENT = Obj(
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
    {"key": Str(), "operator": Str(), "values": Arr(Str())},
    required=("key", "operator"),
)

LABEL_SELECTOR = Obj(
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    {"matchLabels": Map(Str()), "matchExpressions": Arr(LABEL_SELECTOR_REQUIREMENT)},
)

CONDITION = Obj(
    "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
    {
        "type": Str(),
        "status": Str(),
        "observedGeneration": Int(format="int64"),
        "lastTransitionTime": TIME,
        "reason": Str(),
        "message": Str(),
    },
    # As upstream: a metav1.Condition always says when, why and what (message may be "").
    required=("type", "status", "lastTransitionTime", "reason", "message"),
)


def top_level(name: str, **fields: Schema) -> Obj:
    """The schema of a whole object of one kind: apiVersion, kind, metadata and ``fields``."""
    return Obj(name, {"apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META, **fields})


# core/v1 ObjectReference: what an Event is about, which pod an endpoint address is.
OBJECT_REFERENCE = Obj(
    "io.k8s.api.core.v1.ObjectReference",
    {
        "apiVersion": Str(),
        "fieldPath": Str(),
        "kind": Str(),
        "name": Str(),
        "namespace": Str(),
        "resourceVersion": Str(),
        "uid": Str(),
    },
)
