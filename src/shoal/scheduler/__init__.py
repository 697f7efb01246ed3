"""The scheduler's core: choose a node for each pending pod, or say why none will do.

Pure and synchronous: no I/O, no clock. The control loop (watch, queue, bind) is built on
top of it and feeds it watch events; see README.md for the flow and the vocabulary.

Layout: ``snapshot`` (the cluster as the scheduler counts it), ``podinfo`` (what is read
from a pod), ``swarm`` (Swarm's constraint syntax), ``filters/`` and ``scores`` (the
stages), ``chain`` (the pipeline, in one function), ``batch`` (equivalence classes and
placement). The names below are the public surface.
"""

from shoal.scheduler.batch import ClassPlacer, Placement, equivalence_classes, schedule_batch
from shoal.scheduler.chain import Chain, default_chain
from shoal.scheduler.filters import Filter, unschedulable_message
from shoal.scheduler.podinfo import PodInfo, Requests
from shoal.scheduler.scores import LeastAllocated, NodeScore, PlacementPreference, SpreadReplicas
from shoal.scheduler.snapshot import NodeInfo, Snapshot
from shoal.scheduler.swarm import Constraint, SwarmSyntaxError, parse_constraint

__all__ = [
    "Chain",
    "ClassPlacer",
    "Constraint",
    "Filter",
    "LeastAllocated",
    "NodeInfo",
    "NodeScore",
    "Placement",
    "PlacementPreference",
    "PodInfo",
    "Requests",
    "Snapshot",
    "SpreadReplicas",
    "SwarmSyntaxError",
    "default_chain",
    "equivalence_classes",
    "parse_constraint",
    "schedule_batch",
    "unschedulable_message",
]
