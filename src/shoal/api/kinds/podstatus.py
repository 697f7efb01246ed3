"""PodStatus (core/v1): what a node agent reports about a pod and its containers, and the
QoS class the API server derives from the spec when the pod is created.

The status is declared in full (phase, conditions, container states, IPs, times, QoS) since
the agent writes it and the CLI reads it. Resource-claim and resize-progress details are kept
as written. ``ContainerStatus`` requires ``name``, ``ready``, ``restartCount``, ``image`` and
``imageID``, as the spec says: an agent must always report them.
"""

from __future__ import annotations

from typing import Any

from shoal.api.kinds.container import RESOURCE_LIST, RESOURCE_REQUIREMENTS
from shoal.api.kinds.meta import TIME
from shoal.api.quantity import try_parse
from shoal.api.schema import Arr, Bool, Int, Obj, Raw, Str

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")

POD_CONDITION = Obj(
    "io.k8s.api.core.v1.PodCondition",
    {
        "lastProbeTime": TIME,
        "lastTransitionTime": TIME,
        "message": Str(),
        "observedGeneration": Int(format="int64"),
        "reason": Str(),
        "status": Str(),
        "type": Str(),
    },
    required=("type", "status"),
)

CONTAINER_STATE = Obj(
    "io.k8s.api.core.v1.ContainerState",
    {
        "running": Obj("io.k8s.api.core.v1.ContainerStateRunning", {"startedAt": TIME}),
        "terminated": Obj(
            "io.k8s.api.core.v1.ContainerStateTerminated",
            {
                "containerID": Str(),
                "exitCode": Int(),
                "finishedAt": TIME,
                "message": Str(),
                "reason": Str(),
                "signal": Int(),
                "startedAt": TIME,
            },
            required=("exitCode",),
        ),
        "waiting": Obj("io.k8s.api.core.v1.ContainerStateWaiting", {"message": Str(), "reason": Str()}),
    },
)

CONTAINER_STATUS = Obj(
    "io.k8s.api.core.v1.ContainerStatus",
    {
        "allocatedResources": RESOURCE_LIST,
        # Per-device health of allocated resources (device plugins / DRA): kept as written.
        "allocatedResourcesStatus": Arr(Raw(), merge_key="name", strategy="merge", map_keys=("name",)),
        "containerID": Str(),
        "image": Str(),
        "imageID": Str(),
        "lastState": CONTAINER_STATE,
        "name": Str(),
        "ready": Bool(),
        "resources": RESOURCE_REQUIREMENTS,
        "restartCount": Int(),
        "started": Bool(),
        "state": CONTAINER_STATE,
        "stopSignal": Str(),
        # The uid/gids the runtime really used: kept as written.
        "user": Raw(),
        "volumeMounts": Arr(
            Obj(
                "io.k8s.api.core.v1.VolumeMountStatus",
                {"mountPath": Str(), "name": Str(), "readOnly": Bool(), "recursiveReadOnly": Str()},
                required=("name", "mountPath"),
            ),
            merge_key="mountPath",
            strategy="merge",
            map_keys=("mountPath",),
        ),
    },
    required=("name", "ready", "restartCount", "image", "imageID"),
)

_IP = {"ip": Str()}

POD_STATUS = Obj(
    "io.k8s.api.core.v1.PodStatus",
    {
        "allocatedResources": RESOURCE_LIST,
        "conditions": Arr(POD_CONDITION, merge_key="type", strategy="merge", map_keys=("type",)),
        "containerStatuses": Arr(CONTAINER_STATUS),
        "ephemeralContainerStatuses": Arr(CONTAINER_STATUS),
        # Claims made through extended resources (DRA): kept as written.
        "extendedResourceClaimStatus": Raw(),
        "hostIP": Str(),
        "hostIPs": Arr(
            Obj("io.k8s.api.core.v1.HostIP", dict(_IP), required=("ip",)), merge_key="ip", strategy="merge"
        ),
        "initContainerStatuses": Arr(CONTAINER_STATUS),
        "message": Str(),
        "nominatedNodeName": Str(),
        "observedGeneration": Int(format="int64"),
        "phase": Str(enum=POD_PHASES),
        "podIP": Str(),
        "podIPs": Arr(
            Obj("io.k8s.api.core.v1.PodIP", dict(_IP), required=("ip",)),
            merge_key="ip",
            strategy="merge",
            map_keys=("ip",),
        ),
        "qosClass": Str(enum=QOS_CLASSES),
        "reason": Str(),
        "resize": Str(),
        # Status of dynamic resource claims (resource.k8s.io): kept as written.
        "resourceClaimStatuses": Arr(
            Raw(), merge_key="name", strategy="merge,retainKeys", map_keys=("name",)
        ),
        "resources": RESOURCE_REQUIREMENTS,
        "startTime": TIME,
    },
)

_QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's QoS class, as Kubernetes computes it (qos.GetPodQOS): BestEffort with no
    cpu/memory requests or limits anywhere, Guaranteed when every container limits both
    and requests equal limits, Burstable otherwise. Zero quantities count as unset."""
    pod_resources = spec.get("resources") or {}
    if pod_resources.get("requests") or pod_resources.get("limits"):
        # Pod-level resources, when given, decide alone.
        sources = [pod_resources]
    else:
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        sources = [c.get("resources") or {} for c in containers]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for resources in sources:
        for kind, totals in (("requests", requests), ("limits", limits)):
            for name in _QOS_RESOURCES:
                value = try_parse((resources.get(kind) or {}).get(name))
                if value:
                    totals[name] = totals.get(name, 0) + value
        found = {n for n in _QOS_RESOURCES if try_parse((resources.get("limits") or {}).get(n))}
        if found != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"
