"""Swarm placement constraints (``shoal.io/constraints``), parsed by ``swarm.py``.

A pod whose annotation does not parse never reaches this filter: the batch placer reports
the malformed expression instead (``PodInfo.problem``).
"""

from __future__ import annotations

from typing import Final

from shoal.scheduler.filters.base import Filter
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo
from shoal.scheduler.swarm import Constraint

ERR_CONSTRAINTS: Final = "node(s) didn't match Pod's placement constraints"


def node_value(constraint: Constraint, node: NodeInfo) -> str | None:
    """The node's value for the constraint's attribute; None for an absent label."""
    attribute = constraint.attribute
    if attribute == "label":
        return node.labels.get(constraint.label)
    if attribute == "hostname":
        return node.name
    if attribute == "role":
        return node.role
    if attribute == "id":
        return node.uid
    if attribute == "os":
        return node.platform[0]
    return node.platform[1]  # arch: parsing admits no other attribute


class SwarmConstraints(Filter):
    name = "SwarmConstraints"
    reason = ERR_CONSTRAINTS

    def applies_to(self, pod: PodInfo) -> bool:
        return bool(pod.constraints)

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        return all(c.matches(node_value(c, node)) for c in pod.constraints)
