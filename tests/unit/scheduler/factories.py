"""Small builders of Node and Pod JSON for the scheduler tests: only the fields it reads."""

from __future__ import annotations

import json
from typing import Any

from shoal.scheduler import PodInfo, Snapshot
from shoal.scheduler.snapshot import NodeInfo

Object = dict[str, Any]


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int | None = 110,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    taints: list[Object] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
) -> Object:
    allocatable: Object = {"cpu": cpu, "memory": memory}
    if pods is not None:
        allocatable["pods"] = str(pods)
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def pod(
    name: str,
    cpu: str | None = None,
    memory: str | None = None,
    owner: str = "",
    template: str = "",
    node_name: str = "",
    phase: str = "Pending",
    constraints: list[str] | str | None = None,
    preferences: list[str] | None = None,
    host_ports: list[int] | None = None,
    **spec: Any,
) -> Object:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Object = {"name": "c", "image": "busybox", "resources": {"requests": requests}}
    if host_ports:
        container["ports"] = [{"containerPort": p, "hostPort": p, "protocol": "TCP"} for p in host_ports]
    annotations: dict[str, str] = {}
    if constraints is not None:
        annotations["shoal.io/constraints"] = (
            constraints if isinstance(constraints, str) else json.dumps(constraints)
        )
    if preferences is not None:
        annotations["shoal.io/placement-preferences"] = "\n".join(preferences)
    meta: Object = {"name": name, "namespace": "default", "uid": f"uid-{name}", "annotations": annotations}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    if template:
        meta["labels"] = {"pod-template-hash": template}
    body: Object = {"containers": [container], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"metadata": meta, "spec": body, "status": {"phase": phase}}


def info(name: str = "p", **kwargs: Any) -> PodInfo:
    return PodInfo(pod(name, **kwargs))


def node_info(name: str = "n", **kwargs: Any) -> NodeInfo:
    return NodeInfo(node(name, **kwargs))


def snapshot(*nodes: Object) -> Snapshot:
    snap = Snapshot()
    for n in nodes:
        snap.upsert_node(n)
    return snap


def replicas(owner: str, count: int, **kwargs: Any) -> list[Object]:
    return [pod(f"{owner}-{i}", owner=owner, template="h1", **kwargs) for i in range(count)]
