"""The scheduling chain: which filters run, in which order, and how scores are weighed.

``default_chain`` is the one place to read (or change) the whole pipeline, top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.scheduler.filters import (
    Filter,
    FitCPU,
    FitMemory,
    FitPods,
    HostPorts,
    MaxReplicasPerNode,
    NodeAffinity,
    NodeAvailability,
    NodeReady,
    NodeSelector,
    NodeUnschedulable,
    SwarmConstraints,
    TaintToleration,
)
from shoal.scheduler.scores import LeastAllocated, NodeScore, PlacementPreference, SpreadReplicas


@dataclass(frozen=True)
class Chain:
    """Filters in order (a node is rejected by the first that fails, and counted under its
    reason only), node scores with their weights, and the group-level preference."""

    filters: tuple[Filter, ...]
    scores: tuple[NodeScore, ...]
    preference: PlacementPreference

    @property
    def static_filters(self) -> tuple[Filter, ...]:
        return tuple(f for f in self.filters if not f.dynamic)

    @property
    def dynamic_filters(self) -> tuple[Filter, ...]:
        return tuple(f for f in self.filters if f.dynamic)


def default_chain() -> Chain:
    return Chain(
        filters=(
            # Is the node alive? A NotReady node's agent may be gone: nothing new goes there.
            NodeReady(),
            # Has an operator closed it? kubectl cordon, then Swarm's pause/drain.
            NodeUnschedulable(),
            NodeAvailability(),
            # Does the pod want this node? Label selector, required affinity, Swarm constraints:
            # the user's own rules, cheaper than taints and usually the most selective.
            NodeSelector(),
            NodeAffinity(),
            SwarmConstraints(),
            # Does the node want this pod? Taints it does not tolerate keep it away.
            TaintToleration(),
            # Is there room? Checked last and per pod: these change as the batch is placed.
            FitPods(),
            FitCPU(),
            FitMemory(),
            HostPorts(),
            # Does the controller allow one more replica here? (Swarm's max per node.)
            MaxReplicasPerNode(),
        ),
        scores=(
            # Replicas of one controller apart first: losing a node should lose few of them.
            SpreadReplicas(weight=2),
            # Then the emptiest node, so load evens out across the cluster.
            LeastAllocated(weight=1),
        ),
        # Swarm placement preferences outrank both (see PlacementPreference).
        preference=PlacementPreference(weight=10),
    )
