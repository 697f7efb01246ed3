"""The scheduler's picture of the cluster: every node, what it offers, what is already on it.

The loop keeps one ``Snapshot`` current from watch events (``upsert_node``, ``remove_node``,
``upsert_pod``, ``remove_pod``); the batch placer reads it and records each decision with
``assume`` so that the next pod sees the space the previous one took, before the binding
has round-tripped through the store. A bound pod's watch event then replaces the assumed
entry (same key, so it is counted once); ``forget`` undoes an assumption whose binding failed.

Node and pod objects are read, never modified: the usage counters live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from shoal.scheduler.podinfo import HostPort, PodInfo, cpu_milli, is_terminal, quantity

Object = dict[str, Any]

AVAILABILITY_KEY: Final = "shoal.io/availability"
ROLE_KEY: Final = "shoal.io/role"
MANAGER_LABELS: Final = ("node-role.kubernetes.io/manager", "node-role.kubernetes.io/control-plane")
DEFAULT_MAX_PODS: Final = 110  # the kubelet's default, for nodes that do not report pods
FILTERED_EFFECTS: Final = frozenset({"NoSchedule", "NoExecute"})

# (key, value, effect) of a taint that keeps pods away (PreferNoSchedule only scores).
Taint = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class PodUsage:
    """What one pod takes from its node; kept so that removing the pod gives it back."""

    key: str
    owner: str
    cpu: int
    memory: int
    ports: tuple[HostPort, ...]
    assumed: bool


def usage_of(pod: PodInfo, assumed: bool) -> PodUsage:
    return PodUsage(pod.key, pod.owner, pod.requests.cpu, pod.requests.memory, pod.host_ports, assumed)


class NodeInfo:
    """One node's scheduling facts and running totals. Filters and scores read only this."""

    __slots__ = (
        "allocatable_cpu",
        "allocatable_memory",
        "allocatable_pods",
        "annotations",
        "availability",
        "generation",
        "labels",
        "name",
        "obj",
        "owner_counts",
        "platform",
        "pods",
        "ports",
        "ready",
        "requested_cpu",
        "requested_memory",
        "role",
        "taints",
        "uid",
        "unschedulable",
    )

    def __init__(self, node: Object) -> None:
        self.pods: dict[str, PodUsage] = {}
        self.requested_cpu = 0
        self.requested_memory = 0
        self.owner_counts: dict[str, int] = {}
        # (protocol, port) -> {hostIP: pods using it}; "" is the wildcard address.
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        self.generation = 0
        self.set_node(node)

    def set_node(self, node: Object) -> None:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        self.obj = node
        self.name: str = meta.get("name") or ""
        self.uid: str = meta.get("uid") or self.name
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.annotations: dict[str, str] = meta.get("annotations") or {}
        self.ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        self.unschedulable = bool(spec.get("unschedulable"))
        # The annotation wins over the label: `shoal node update` writes the annotation.
        self.availability: str = (
            self.annotations.get(AVAILABILITY_KEY) or self.labels.get(AVAILABILITY_KEY) or "active"
        ).lower()
        manager = any(k in self.labels for k in MANAGER_LABELS) or self.labels.get(ROLE_KEY) == "manager"
        self.role = "manager" if manager else "worker"
        self.taints: tuple[Taint, ...] = tuple(
            (t.get("key") or "", t.get("value") or "", t.get("effect") or "")
            for t in spec.get("taints") or []
            if t.get("effect") in FILTERED_EFFECTS
        )
        info = status.get("nodeInfo") or {}
        self.platform = (info.get("operatingSystem") or "", info.get("architecture") or "")
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        self.allocatable_cpu = cpu_milli(allocatable.get("cpu"))
        self.allocatable_memory = quantity(allocatable.get("memory"))
        pods = allocatable.get("pods")
        self.allocatable_pods = quantity(pods) if pods is not None else DEFAULT_MAX_PODS
        self.generation += 1

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"

    def add(self, usage: PodUsage) -> None:
        self.remove(usage.key)
        self.pods[usage.key] = usage
        self.requested_cpu += usage.cpu
        self.requested_memory += usage.memory
        if usage.owner:
            self.owner_counts[usage.owner] = self.owner_counts.get(usage.owner, 0) + 1
        for protocol, ip, port in usage.ports:
            ips = self.ports.setdefault((protocol, port), {})
            ips[ip] = ips.get(ip, 0) + 1

    def remove(self, key: str) -> PodUsage | None:
        usage = self.pods.pop(key, None)
        if usage is None:
            return None
        self.requested_cpu -= usage.cpu
        self.requested_memory -= usage.memory
        if usage.owner:
            left = self.owner_counts[usage.owner] - 1
            if left:
                self.owner_counts[usage.owner] = left
            else:
                del self.owner_counts[usage.owner]
        for protocol, ip, port in usage.ports:
            ips = self.ports[(protocol, port)]
            ips[ip] -= 1
            if not ips[ip]:
                del ips[ip]
            if not ips:
                del self.ports[(protocol, port)]
        return usage

    def port_free(self, protocol: str, ip: str, port: int) -> bool:
        """Kubernetes' rule: a wildcard address conflicts with every address of the port."""
        ips = self.ports.get((protocol, port))
        return not ips or (bool(ip) and "" not in ips and ip not in ips)


class Snapshot:
    """All nodes by name, with the pods counted on each. Pods bound to a node the snapshot
    does not know yet (watch events of different kinds arrive in any order) are held aside
    and counted once the node appears."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._where: dict[str, str] = {}  # pod key -> node name it is counted on
        self._waiting: dict[str, dict[str, PodUsage]] = {}  # node name -> pods of an unknown node

    def __len__(self) -> int:
        return len(self.nodes)

    def upsert_node(self, node: Object) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name") or ""
        info = self.nodes.get(name)
        if info is not None:
            info.set_node(node)
            return info
        info = self.nodes[name] = NodeInfo(node)
        for usage in self._waiting.pop(name, {}).values():
            info.add(usage)
        return info

    def remove_node(self, name: str) -> None:
        """Its pods wait for the node to come back, or for their own delete events."""
        info = self.nodes.pop(name, None)
        if info is not None and info.pods:
            self._waiting[name] = dict(info.pods)

    def upsert_pod(self, pod: Object) -> None:
        """Count a pod where it is bound; a pod that is unbound or finished takes nothing."""
        info = PodInfo(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        # A terminating pod still holds its resources until it is gone, as in Kubernetes.
        if is_terminal(pod):
            self.remove_pod(info.key)
        elif node:
            self._place(usage_of(info, assumed=False), node)
        # An unbound pod takes nothing, but one we assumed keeps its place: an update that
        # races its binding (a status write, a label) must not hand its room to another pod.
        # The loop calls ``forget`` when the binding fails.

    def remove_pod(self, key: str) -> None:
        node = self._where.pop(key, None)
        if node is None:
            return
        info = self.nodes.get(node)
        if info is not None:
            info.remove(key)
        else:
            self._waiting.get(node, {}).pop(key, None)

    def assume(self, pod: PodInfo, node: str) -> None:
        """Count a pod on the node just chosen for it, before its binding is observed."""
        self._place(usage_of(pod, assumed=True), node)

    def forget(self, key: str) -> None:
        """Undo ``assume`` (the binding failed); a pod whose binding was observed stays."""
        node = self._where.get(key)
        info = self.nodes.get(node) if node else None
        usage = info.pods.get(key) if info else None
        if usage is not None and usage.assumed:
            self.remove_pod(key)

    def node_of(self, key: str) -> str | None:
        return self._where.get(key)

    def _place(self, usage: PodUsage, node: str) -> None:
        if self._where.get(usage.key) != node:
            self.remove_pod(usage.key)
        self._where[usage.key] = node
        info = self.nodes.get(node)
        if info is not None:
            info.add(usage)
        else:
            self._waiting.setdefault(node, {})[usage.key] = usage
