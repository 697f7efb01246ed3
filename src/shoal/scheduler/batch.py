"""Place a batch of pending pods: one equivalence class at a time, one pod at a time.

For each class (pods of one controller and template):

1. the static filters run once, for the class's first pod, over every node; each rejected
   node is counted under the reason of the first filter that refused it;
2. the feasible nodes go into max-heaps of their node score, one heap per placement group
   (one group unless the pods have placement preferences);
3. for each pod: the dynamic filters (room, ports) check each group's best node; a node they
   refuse is dropped for the rest of the batch (assumptions only ever take room away) and its
   reason counted, until every group's best node fits or the group is empty; then the best
   group (preference score + its best node's score) gives its best node, the pod is assumed
   onto it and the node goes back into the heap with its new, lower score.

So a class costs one pass over the nodes, then O(groups + log nodes) per pod, instead of a
pass per pod. Ties between equal scores are broken by a random draw seeded from the uid of the
class's first pod: the same batch on the same snapshot is placed the same way, every time.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shoal.scheduler.chain import Chain, default_chain
from shoal.scheduler.filters.base import ranked, unschedulable_message
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.scores import GroupKey
from shoal.scheduler.snapshot import NodeInfo, Snapshot

# (-score, random tie-break, node name): heapq is a min-heap, so the best node comes first.
_Entry = tuple[float, float, str]


@dataclass(frozen=True, slots=True)
class Placement:
    """The decision for one pod: a node, or why there is none (``message``)."""

    pod_key: str
    node: str | None
    message: str = ""
    # Rejected nodes per reason, most frequent first, for the Event and for post-mortems.
    rejections: tuple[tuple[str, int], ...] = ()

    @property
    def scheduled(self) -> bool:
        return self.node is not None


class _Group:
    __slots__ = ("count", "heap", "key")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.heap: list[_Entry] = []
        self.count = 0  # the controller's pods on the group's feasible nodes


class ClassPlacer:
    """The per-cycle state of one equivalence class: feasible nodes, heaps, rejections."""

    def __init__(self, first: PodInfo, snapshot: Snapshot, chain: Chain) -> None:
        self.snapshot = snapshot
        self.chain = chain
        self.total = len(snapshot.nodes)
        self.rejections: Counter[str] = Counter()
        self.rng = random.Random(first.uid)
        self.dynamic = [f for f in chain.dynamic_filters if f.applies_to(first)]
        self.scores = [(s.weight, s) for s in chain.scores if s.applies_to(first)]
        self.groups: dict[GroupKey, _Group] = {}
        self._filter(first)

    def _filter(self, pod: PodInfo) -> None:
        static = [f for f in self.chain.static_filters if f.applies_to(pod)]
        preference, owner = self.chain.preference, pod.owner
        for node in self.snapshot.nodes.values():
            for f in static:
                if not f.check(pod, node):
                    self.rejections[f.reason_for(pod, node)] += 1
                    break
            else:
                key = preference.group_of(pod, node)
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = _Group(key)
                group.heap.append(self._entry(pod, node))
                if owner:
                    group.count += node.owner_counts.get(owner, 0)
        for group in self.groups.values():
            heapq.heapify(group.heap)

    def _entry(self, pod: PodInfo, node: NodeInfo) -> _Entry:
        score = 0.0
        for weight, scorer in self.scores:
            score += weight * scorer.score(pod, node)
        return (-score, self.rng.random(), node.name)

    def _best_group(self) -> _Group:
        groups = self.groups
        if len(groups) == 1:
            return next(iter(groups.values()))
        preference = self.chain.preference
        scores = preference.score_groups({key: group.count for key, group in groups.items()})
        best: _Group | None = None
        best_rank = (0.0, 0.0)
        for key, group in groups.items():
            top = group.heap[0]
            # Larger is better: the group's weighted score plus its best node's, then tie-break.
            rank = (preference.weight * scores[key] - top[0], -top[1])
            if best is None or rank > best_rank:
                best, best_rank = group, rank
        assert best is not None
        return best

    def _open(self, pod: PodInfo, group: _Group) -> None:
        """Drop the group's best nodes while the dynamic filters refuse them, and the group
        when none is left. Afterwards the group's top node can take the pod."""
        heap, nodes = group.heap, self.snapshot.nodes
        while heap:
            node = nodes[heap[0][2]]
            for f in self.dynamic:
                if not f.check(pod, node):
                    self.rejections[f.reason_for(pod, node)] += 1
                    heapq.heappop(heap)
                    break
            else:
                return
        del self.groups[group.key]

    def place(self, pod: PodInfo) -> Placement:
        """Choose a node for ``pod`` (a member of this class) and assume it there."""
        # Every group's top is checked, not just the chosen one's: a group that can no longer
        # take the pod must not count in the preference scores (its low count would make the
        # open groups' differences look small), as in Swarm, which builds its tree from the
        # nodes that pass every filter.
        for group in list(self.groups.values()):
            self._open(pod, group)
        if not self.groups:
            return Placement(
                pod.key,
                None,
                unschedulable_message(self.total, self.rejections),
                ranked(self.rejections),
            )
        group = self._best_group()
        name = group.heap[0][2]
        self.snapshot.assume(pod, name)
        if pod.owner:
            group.count += 1
        heapq.heapreplace(group.heap, self._entry(pod, self.snapshot.nodes[name]))
        return Placement(pod.key, name)


def equivalence_classes(pods: Iterable[PodInfo]) -> list[list[PodInfo]]:
    """Pods grouped by class key, classes in order of first appearance, pods in given order."""
    classes: dict[str, list[PodInfo]] = {}
    for pod in pods:
        classes.setdefault(pod.class_key, []).append(pod)
    return list(classes.values())


def schedule_batch(
    pods: Iterable[dict[str, Any] | PodInfo],
    snapshot: Snapshot,
    chain: Chain | None = None,
    *,
    equivalence: bool = True,
) -> list[Placement]:
    """Place pending pods onto the snapshot's nodes; one Placement per pod, in input order.

    Every placed pod is assumed into ``snapshot`` (call ``snapshot.forget(key)`` if its
    binding then fails). Pods must be unbound (no ``spec.nodeName``) and not terminal.

    Args:
        pods: Pod objects (JSON dicts) or ``PodInfo`` already built from them.
        snapshot: the cluster, kept current by the caller from watch events.
        chain: filters and scores; ``default_chain()`` when None.
        equivalence: False evaluates every pod on its own (for comparison and debugging).
    """
    chain = chain or default_chain()
    infos = [p if isinstance(p, PodInfo) else PodInfo(p) for p in pods]
    placed: dict[int, Placement] = {}
    classes = equivalence_classes(infos) if equivalence else [[pod] for pod in infos]
    index = {id(pod): i for i, pod in enumerate(infos)}
    for members in classes:
        first = members[0]
        if first.problem:
            for pod in members:
                placed[index[id(pod)]] = Placement(pod.key, None, first.problem)
            continue
        placer = ClassPlacer(first, snapshot, chain)
        for pod in members:
            placed[index[id(pod)]] = placer.place(pod)
    return [placed[i] for i in range(len(infos))]
