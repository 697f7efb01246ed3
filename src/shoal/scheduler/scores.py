"""Scores rank the nodes that passed every filter; each gives 0..100, and the chain weighs them.

Node scores depend only on the node itself (its own counters), and only fall as pods are
assumed onto it. That is what lets the batch placer keep the feasible nodes in a heap and
re-score just the node it used, instead of every node for every pod; a score normalised
across nodes (Kubernetes divides by the busiest node) would break that, so none is.

The placement preference scores a *group* of nodes (one value of a node label) rather than
a node: the placer keeps one heap per group and adds the group's score to its best node.
"""

from __future__ import annotations

from typing import ClassVar

from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo

GroupKey = tuple[str, ...]  # the node's value of each spread label, "" when it has none


class NodeScore:
    """A node's desirability for a pod, 0 (worst) to 100 (best)."""

    name: ClassVar[str] = ""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def applies_to(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, node: NodeInfo) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<score {self.name} x{self.weight}>"


class SpreadReplicas(NodeScore):
    """Fewer pods of the same controller on a node is better (Swarm's default strategy,
    Kubernetes' SelectorSpread): 100 for none, 50 for one, 33 for two... The steps shrink
    as counts grow, so with many replicas per node the resource score gets its say."""

    name = "SpreadReplicas"

    def applies_to(self, pod: PodInfo) -> bool:
        return bool(pod.owner)

    def score(self, pod: PodInfo, node: NodeInfo) -> float:
        return 100.0 / (1 + node.owner_counts.get(pod.owner, 0))


class LeastAllocated(NodeScore):
    """Kubernetes' NodeResourcesFit LeastAllocated: the free fraction of cpu and memory that
    would remain with the pod placed, averaged. Favours empty nodes, so load evens out."""

    name = "LeastAllocated"

    def score(self, pod: PodInfo, node: NodeInfo) -> float:
        requests = pod.requests
        cpu = _free(node.allocatable_cpu, node.requested_cpu + requests.cpu)
        memory = _free(node.allocatable_memory, node.requested_memory + requests.memory)
        return 50.0 * (cpu + memory)


def _free(allocatable: int, requested: int) -> float:
    if allocatable <= 0:
        return 0.0
    return max(0.0, (allocatable - requested) / allocatable)


class PlacementPreference:
    """Swarm's ``spread=node.labels.KEY``: spread the controller's pods evenly across the
    values of a label (zones, racks), whatever the number of nodes behind each value.

    A value with the fewest pods scores 100, one pod more 50, two more 33... The default
    weight (10) makes one pod of imbalance (a loss of 500) outweigh any node-level
    difference (at most 300 with the default weights): the preference is met first, as in
    Swarm, and node scores decide within a value. With several preferences the first one
    weighs most (Swarm builds a tree: zone first, then rack within the zone).
    """

    name: ClassVar[str] = "PlacementPreference"

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def group_of(self, pod: PodInfo, node: NodeInfo) -> GroupKey:
        labels = node.labels
        return tuple(labels.get(key, "") for key in pod.spread_labels)

    def score_groups(self, counts: dict[GroupKey, int]) -> dict[GroupKey, float]:
        """Each group's score, 0..100, from the controller's pod count in every group."""
        if not counts:
            return {}
        levels = len(next(iter(counts)))
        if levels == 0:
            return dict.fromkeys(counts, 0.0)
        totals = dict.fromkeys(counts, 0.0)
        for level in range(levels):
            per_value: dict[str, int] = {}
            for key, count in counts.items():
                per_value[key[level]] = per_value.get(key[level], 0) + count
            least = min(per_value.values())
            level_weight = levels - level
            for key in counts:
                totals[key] += level_weight * 100.0 / (1 + per_value[key[level]] - least)
        scale = levels * (levels + 1) / 2  # the sum of the level weights
        return {key: total / scale for key, total in totals.items()}
