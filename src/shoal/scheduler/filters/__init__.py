"""Feasibility filters: one question about one node each, explained when the answer is no."""

from shoal.scheduler.filters.affinity import ERR_AFFINITY, NodeAffinity, NodeSelector
from shoal.scheduler.filters.base import Filter, unschedulable_message
from shoal.scheduler.filters.constraints import ERR_CONSTRAINTS, SwarmConstraints
from shoal.scheduler.filters.fit import (
    ERR_INSUFFICIENT_CPU,
    ERR_INSUFFICIENT_MEMORY,
    ERR_MAX_REPLICAS,
    ERR_PORTS,
    ERR_TOO_MANY_PODS,
    FitCPU,
    FitMemory,
    FitPods,
    HostPorts,
    MaxReplicasPerNode,
)
from shoal.scheduler.filters.node import (
    ERR_NOT_READY,
    ERR_UNAVAILABLE,
    ERR_UNSCHEDULABLE,
    NodeAvailability,
    NodeReady,
    NodeUnschedulable,
)
from shoal.scheduler.filters.taints import ERR_TAINT, TaintToleration

__all__ = [
    "ERR_AFFINITY",
    "ERR_CONSTRAINTS",
    "ERR_INSUFFICIENT_CPU",
    "ERR_INSUFFICIENT_MEMORY",
    "ERR_MAX_REPLICAS",
    "ERR_NOT_READY",
    "ERR_PORTS",
    "ERR_TAINT",
    "ERR_TOO_MANY_PODS",
    "ERR_UNAVAILABLE",
    "ERR_UNSCHEDULABLE",
    "Filter",
    "FitCPU",
    "FitMemory",
    "FitPods",
    "HostPorts",
    "MaxReplicasPerNode",
    "NodeAffinity",
    "NodeAvailability",
    "NodeReady",
    "NodeSelector",
    "NodeUnschedulable",
    "SwarmConstraints",
    "TaintToleration",
    "unschedulable_message",
]
