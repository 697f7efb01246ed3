"""Filters on what is already on the node: pod count, cpu, memory, host ports.

These are the ``dynamic`` filters: every pod assumed onto a node changes their answer, so
the batch placer runs them on the chosen node for every pod rather than once per class.
One filter per resource, so that each rejected node is counted under exactly one reason.
"""

from __future__ import annotations

from typing import Final

from shoal.scheduler.filters.base import Filter
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo

ERR_TOO_MANY_PODS: Final = "Too many pods"
ERR_INSUFFICIENT_CPU: Final = "Insufficient cpu"
ERR_INSUFFICIENT_MEMORY: Final = "Insufficient memory"
ERR_PORTS: Final = "node(s) didn't have free ports for the requested pod ports"
ERR_MAX_REPLICAS: Final = "node(s) already ran the Pod's maximum replicas per node"


class FitPods(Filter):
    name = "FitPods"
    reason = ERR_TOO_MANY_PODS
    dynamic = True

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return len(node.pods) < node.allocatable_pods


class FitCPU(Filter):
    name = "FitCPU"
    reason = ERR_INSUFFICIENT_CPU
    dynamic = True

    def applies_to(self, pod: PodInfo) -> bool:
        # A pod that requests nothing fits anywhere, even on a full node (BestEffort).
        return pod.requests.cpu > 0

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return node.requested_cpu + pod.requests.cpu <= node.allocatable_cpu


class FitMemory(Filter):
    name = "FitMemory"
    reason = ERR_INSUFFICIENT_MEMORY
    dynamic = True

    def applies_to(self, pod: PodInfo) -> bool:
        return pod.requests.memory > 0

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return node.requested_memory + pod.requests.memory <= node.allocatable_memory


class HostPorts(Filter):
    """A host port (protocol, address, port) can be held by one pod per node; the wildcard
    address 0.0.0.0 conflicts with every specific address of the same port."""

    name = "NodePorts"
    reason = ERR_PORTS
    dynamic = True

    def applies_to(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        ports = pod.host_ports
        if len(set(ports)) != len(ports):
            return False  # the pod's own containers collide
        return all(node.port_free(protocol, ip, port) for protocol, ip, port in ports)


class MaxReplicasPerNode(Filter):
    """Swarm's ``--replicas-max-per-node`` (annotation ``shoal.io/max-replicas-per-node``):
    at most that many pods of the same controller on one node."""

    name = "MaxReplicasPerNode"
    reason = ERR_MAX_REPLICAS
    dynamic = True

    def applies_to(self, pod: PodInfo) -> bool:
        return bool(pod.owner) and pod.max_replicas_per_node > 0

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return node.owner_counts.get(pod.owner, 0) < pod.max_replicas_per_node
