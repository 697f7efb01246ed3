"""The batch placer keeps heaps and drops nodes instead of re-scoring every node per pod.
These tests replay its decisions against a brute-force scheduler that does re-score every
node, and check that each pod got a node with the best score there was."""

from __future__ import annotations

import random

import pytest

from shoal.scheduler import PodInfo, Snapshot, default_chain, equivalence_classes, schedule_batch
from shoal.scheduler.snapshot import NodeInfo
from tests.unit.scheduler.factories import node, pod

CHAIN = default_chain()


def random_cluster(rng: random.Random) -> list[dict[str, object]]:
    nodes = []
    for i in range(30):
        taints = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}] if i % 9 == 0 else []
        nodes.append(
            node(
                f"n{i:02d}",
                cpu=str(rng.choice([1, 2, 4])),
                memory=f"{rng.choice([1, 2, 4])}Gi",
                pods=rng.choice([3, 5, 110]),
                labels={"zone": f"z{i % 3}", "rack": f"r{i % 4}"},
                taints=taints,
            )
        )
    return nodes


def random_pods(rng: random.Random) -> list[dict[str, object]]:
    pods = []
    for d in range(5):
        cpu, memory = rng.choice(["100m", "300m", "700m"]), rng.choice(["128Mi", "512Mi"])
        prefs = [["spread=node.labels.zone"], ["spread=node.labels.zone", "spread=node.labels.rack"], None][
            d % 3
        ]
        ports = [8080] if d == 4 else None  # at most one per node: a dynamic filter
        for r in range(rng.randint(5, 40)):
            pods.append(
                pod(
                    f"d{d}-{r}",
                    cpu=cpu,
                    memory=memory,
                    owner=f"o{d}",
                    template="t",
                    preferences=prefs,
                    host_ports=ports,
                )
            )
    rng.shuffle(pods)
    return pods


def static_ok(pod: PodInfo, node: NodeInfo) -> bool:
    return all(f.check(pod, node) for f in CHAIN.static_filters if f.applies_to(pod))


def dynamic_ok(pod: PodInfo, node: NodeInfo) -> bool:
    return all(f.check(pod, node) for f in CHAIN.dynamic_filters if f.applies_to(pod))


def best_scores(pod: PodInfo, snap: Snapshot) -> dict[str, float]:
    """Every node's total score, computed from scratch, for the nodes that can take the pod."""
    feasible = [n for n in snap.nodes.values() if static_ok(pod, n)]
    counts: dict[tuple[str, ...], int] = {}
    open_groups = set()
    for n in feasible:
        key = CHAIN.preference.group_of(pod, n)
        counts[key] = counts.get(key, 0) + n.owner_counts.get(pod.owner, 0)
        if dynamic_ok(pod, n):
            open_groups.add(key)
    group_scores = CHAIN.preference.score_groups({k: v for k, v in counts.items() if k in open_groups})
    totals = {}
    for n in feasible:
        if dynamic_ok(pod, n):
            score = sum(s.weight * s.score(pod, n) for s in CHAIN.scores if s.applies_to(pod))
            key = CHAIN.preference.group_of(pod, n)
            if len(open_groups) > 1:
                score += CHAIN.preference.weight * group_scores[key]
            totals[n.name] = score
    return totals


@pytest.mark.parametrize("seed", range(12))
def test_every_pod_gets_a_best_scoring_node(seed: int) -> None:
    rng = random.Random(seed)
    nodes, pods = random_cluster(rng), random_pods(rng)
    placed_snapshot, replay = Snapshot(), Snapshot()
    for n in nodes:
        placed_snapshot.upsert_node(n)
        replay.upsert_node(n)
    infos = [PodInfo(p) for p in pods]
    decisions = {p.pod_key: p for p in schedule_batch(infos, placed_snapshot)}
    for members in equivalence_classes(infos):
        for info in members:
            decision = decisions[info.key]
            scores = best_scores(info, replay)
            if decision.node is None:
                assert scores == {}, decision.message
                continue
            assert scores[decision.node] == pytest.approx(max(scores.values()))
            replay.assume(info, decision.node)
    assert sum(d.scheduled for d in decisions.values()) > len(pods) // 2
