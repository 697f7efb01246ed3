"""Filters on the node's own state: Ready, cordoned, Swarm availability."""

from __future__ import annotations

from typing import Final

from shoal.scheduler.filters.base import Filter
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo

ERR_NOT_READY: Final = "node(s) were not ready"
ERR_UNSCHEDULABLE: Final = "node(s) were unschedulable"
ERR_UNAVAILABLE: Final = "node(s) were paused or drained"


class NodeReady(Filter):
    """Only nodes whose agent reports Ready=True take new pods: the others may be gone."""

    name = "NodeReady"
    reason = ERR_NOT_READY

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return node.ready


class NodeUnschedulable(Filter):
    """``spec.unschedulable`` (kubectl cordon). Kubernetes lets a pod tolerate it with the
    node.kubernetes.io/unschedulable:NoSchedule taint; so do we."""

    name = "NodeUnschedulable"
    reason = ERR_UNSCHEDULABLE

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        if not node.unschedulable:
            return True
        return any(
            t.get("key") == "node.kubernetes.io/unschedulable"
            and t.get("operator") == "Exists"
            and t.get("effect") in (None, "", "NoSchedule")
            for t in pod.spec.get("tolerations") or []
        )


class NodeAvailability(Filter):
    """Swarm's node availability (``shoal.io/availability`` annotation or label): pause and
    drain both stop new placements; drain's eviction is the node controller's business.
    An unknown value counts as unavailable: a typo must not put pods on a drained node."""

    name = "NodeAvailability"
    reason = ERR_UNAVAILABLE

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return node.availability == "active"
