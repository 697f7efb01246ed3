"""ReplicaSet (apps/v1): keeps a number of identical pods running. Deployments own them; users
rarely write one by hand.

Defaults (SetDefaults_ReplicaSet): ``replicas`` 1, and the pod spec defaults in the template.
``spec.selector`` is immutable.
"""

from __future__ import annotations

from shoal.api.errors import FieldError
from shoal.api.kind import Column, Kind, Object, Scale
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import LABEL_SELECTOR, TIME, top_level
from shoal.api.kinds.podspec import POD_TEMPLATE_SPEC, default_pod_template
from shoal.api.kinds.workload import validate_replicated_template, validate_selector, wide_columns
from shoal.api.schema import Arr, Int, Obj, Str
from shoal.api.validation import immutable, non_negative

REPLICA_SET_SPEC = Obj(
    "io.k8s.api.apps.v1.ReplicaSetSpec",
    {"minReadySeconds": Int(), "replicas": Int(), "selector": LABEL_SELECTOR, "template": POD_TEMPLATE_SPEC},
    required=("selector",),
)

REPLICA_SET_CONDITION = Obj(
    "io.k8s.api.apps.v1.ReplicaSetCondition",
    {"lastTransitionTime": TIME, "message": Str(), "reason": Str(), "status": Str(), "type": Str()},
    required=("type", "status"),
)

REPLICA_SET_STATUS = Obj(
    "io.k8s.api.apps.v1.ReplicaSetStatus",
    {
        "availableReplicas": Int(),
        "conditions": Arr(REPLICA_SET_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "fullyLabeledReplicas": Int(),
        "observedGeneration": Int(format="int64"),
        "readyReplicas": Int(),
        "replicas": Int(),
        "terminatingReplicas": Int(),
    },
    required=("replicas",),
)


def default(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    default_pod_template(spec.setdefault("template", {}))


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = non_negative("spec.replicas", spec.get("replicas"))
    errors += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    # "for deployment" is Kubernetes' own wording for ReplicaSets too.
    errors += validate_selector(spec, "spec", "deployment")
    errors += validate_replicated_template(spec, "spec", "ReplicaSet")
    return errors


def validate_update(new: Object, old: Object) -> list[FieldError]:
    return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))


REPLICA_SET = Kind(
    group="apps",
    version="v1",
    kind="ReplicaSet",
    plural="replicasets",
    singular="replicaset",
    namespaced=True,
    short_names=("rs",),
    categories=("all",),
    schema=top_level("io.k8s.api.apps.v1.ReplicaSet", spec=REPLICA_SET_SPEC, status=REPLICA_SET_STATUS),
    scale=Scale(),
    columns=(
        NAME,
        Column("Desired", lambda o: dig(o, "spec", "replicas", default=0), type="integer"),
        Column("Current", lambda o: dig(o, "status", "replicas", default=0), type="integer"),
        Column("Ready", lambda o: dig(o, "status", "readyReplicas", default=0), type="integer"),
        AGE,
        *wide_columns(),
    ),
    default=default,
    validate=validate,
    validate_update=validate_update,
    field_selectors={"status.replicas": lambda o: str(dig(o, "status", "replicas", default=0))},
)
