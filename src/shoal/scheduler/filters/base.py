"""The filter interface, and the explanation of a pod that no node can take.

A filter answers one yes/no question about one node for one pod. As in SwarmKit, it has
three methods: ``applies_to`` (skip it for pods it cannot concern, e.g. no host ports),
``check`` and ``explain``. Kubernetes' wording is kept for the reasons, because users search
for those exact strings.

``dynamic`` filters read what is already on the node (resources, ports): their answer
changes as pods are assumed, so the batch placer re-checks them for every pod. The others
depend only on the node and the pod's template, so they run once per equivalence class.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo


class Filter:
    """One feasibility check. Subclasses set ``name``, ``reason`` and implement ``check``."""

    name: ClassVar[str] = ""
    reason: ClassVar[str] = ""
    dynamic: ClassVar[bool] = False

    def applies_to(self, pod: PodInfo) -> bool:
        """False when the filter cannot reject any node for this pod: it is skipped."""
        return True

    def check(self, pod: PodInfo, node: NodeInfo) -> bool:
        raise NotImplementedError

    def reason_for(self, pod: PodInfo, node: NodeInfo) -> str:
        """The reason recorded when ``check`` failed; most filters have one fixed reason,
        the taint filter names the taint, as kube-scheduler does."""
        return self.reason

    def explain(self, count: int) -> str:
        return f"{count} {self.reason}"

    def __repr__(self) -> str:
        return f"<filter {self.name}>"


def unschedulable_message(total: int, rejections: Counter[str]) -> str:
    """kube-scheduler's FitError text: "0/5 nodes are available: 3 Insufficient memory,
    2 node(s) had untolerated taint {dedicated: gpu}." — most frequent reason first."""
    if not total:
        return "0/0 nodes are available: no nodes are registered."
    reasons = ", ".join(f"{n} {reason}" for reason, n in ranked(rejections))
    return f"0/{total} nodes are available: {reasons}."


def ranked(rejections: Counter[str]) -> tuple[tuple[str, int], ...]:
    """(reason, nodes) pairs, most frequent first, ties in alphabetical order."""
    return tuple(sorted(rejections.items(), key=lambda item: (-item[1], item[0])))
