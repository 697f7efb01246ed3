"""Where a pod may run (core/v1): tolerations, node and pod affinity, topology spread.

Declared in full because the scheduler reads them all; none has a default.
"""

from __future__ import annotations

from shoal.api.kinds.meta import LABEL_SELECTOR
from shoal.api.schema import Arr, Int, Obj, Str

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

TOLERATION = Obj(
    "io.k8s.api.core.v1.Toleration",
    {
        "effect": Str(),
        "key": Str(),
        "operator": Str(),
        "tolerationSeconds": Int(format="int64"),
        "value": Str(),
    },
)

NODE_SELECTOR_REQUIREMENT = Obj(
    "io.k8s.api.core.v1.NodeSelectorRequirement",
    {"key": Str(), "operator": Str(), "values": Arr(Str())},
    required=("key", "operator"),
)
NODE_SELECTOR_TERM = Obj(
    "io.k8s.api.core.v1.NodeSelectorTerm",
    {"matchExpressions": Arr(NODE_SELECTOR_REQUIREMENT), "matchFields": Arr(NODE_SELECTOR_REQUIREMENT)},
)
NODE_SELECTOR = Obj(
    "io.k8s.api.core.v1.NodeSelector",
    {"nodeSelectorTerms": Arr(NODE_SELECTOR_TERM)},
    required=("nodeSelectorTerms",),
)
PREFERRED_SCHEDULING_TERM = Obj(
    "io.k8s.api.core.v1.PreferredSchedulingTerm",
    {"preference": NODE_SELECTOR_TERM, "weight": Int()},
    required=("weight", "preference"),
)
NODE_AFFINITY = Obj(
    "io.k8s.api.core.v1.NodeAffinity",
    {
        "preferredDuringSchedulingIgnoredDuringExecution": Arr(PREFERRED_SCHEDULING_TERM),
        "requiredDuringSchedulingIgnoredDuringExecution": NODE_SELECTOR,
    },
)

POD_AFFINITY_TERM = Obj(
    "io.k8s.api.core.v1.PodAffinityTerm",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": Arr(Str()),
        "mismatchLabelKeys": Arr(Str()),
        "namespaceSelector": LABEL_SELECTOR,
        "namespaces": Arr(Str()),
        "topologyKey": Str(),
    },
    required=("topologyKey",),
)
WEIGHTED_POD_AFFINITY_TERM = Obj(
    "io.k8s.api.core.v1.WeightedPodAffinityTerm",
    {"podAffinityTerm": POD_AFFINITY_TERM, "weight": Int()},
    required=("weight", "podAffinityTerm"),
)
_POD_AFFINITY_FIELDS = {
    "preferredDuringSchedulingIgnoredDuringExecution": Arr(WEIGHTED_POD_AFFINITY_TERM),
    "requiredDuringSchedulingIgnoredDuringExecution": Arr(POD_AFFINITY_TERM),
}
POD_AFFINITY = Obj("io.k8s.api.core.v1.PodAffinity", dict(_POD_AFFINITY_FIELDS))
POD_ANTI_AFFINITY = Obj("io.k8s.api.core.v1.PodAntiAffinity", dict(_POD_AFFINITY_FIELDS))

AFFINITY = Obj(
    "io.k8s.api.core.v1.Affinity",
    {"nodeAffinity": NODE_AFFINITY, "podAffinity": POD_AFFINITY, "podAntiAffinity": POD_ANTI_AFFINITY},
)

TOPOLOGY_SPREAD_CONSTRAINT = Obj(
    "io.k8s.api.core.v1.TopologySpreadConstraint",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": Arr(Str()),
        "maxSkew": Int(),
        "minDomains": Int(),
        "nodeAffinityPolicy": Str(),
        "nodeTaintsPolicy": Str(),
        "topologyKey": Str(),
        "whenUnsatisfiable": Str(),
    },
    required=("maxSkew", "topologyKey", "whenUnsatisfiable"),
)
