from __future__ import annotations

from collections import Counter

from shoal.scheduler import Placement, PodInfo, equivalence_classes, schedule_batch
from tests.unit.scheduler.factories import node, pod, replicas, snapshot


def spread(placements: list[Placement]) -> list[int]:
    return sorted(Counter(p.node for p in placements).values())


def test_six_replicas_on_three_equal_nodes_spread_two_each() -> None:
    snap = snapshot(node("n1"), node("n2"), node("n3"))
    placements = schedule_batch(replicas("web", 6, cpu="100m", memory="64Mi"), snap)
    assert all(p.scheduled for p in placements)
    assert spread(placements) == [2, 2, 2]
    assert [snap.nodes[n].owner_counts["web"] for n in ("n1", "n2", "n3")] == [2, 2, 2]


def test_spread_accounts_for_replicas_already_running() -> None:
    snap = snapshot(node("n1"), node("n2"), node("n3"))
    for i in range(2):
        snap.upsert_pod(pod(f"old{i}", owner="web", node_name="n1"))
    placements = schedule_batch(replicas("web", 4), snap)
    assert Counter(p.node for p in placements) == {"n2": 2, "n3": 2}


def test_without_equivalence_classes_the_result_is_as_good() -> None:
    snap = snapshot(node("n1"), node("n2"), node("n3"))
    placements = schedule_batch(replicas("web", 6, cpu="100m"), snap, equivalence=False)
    assert spread(placements) == [2, 2, 2]


def test_placement_is_reproducible() -> None:
    def run() -> list[str | None]:
        snap = snapshot(*(node(f"n{i}") for i in range(10)))
        return [p.node for p in schedule_batch(replicas("web", 7), snap)]

    assert run() == run()


def test_resources_run_out_across_a_batch() -> None:
    snap = snapshot(node("n1", cpu="1", memory="4Gi"), node("n2", cpu="1", memory="4Gi"))
    placements = schedule_batch(replicas("job", 5, cpu="400m"), snap)
    assert [p.scheduled for p in placements] == [True, True, True, True, False]
    assert placements[4].message == "0/2 nodes are available: 2 Insufficient cpu."
    assert snap.nodes["n1"].requested_cpu == snap.nodes["n2"].requested_cpu == 800


def test_unschedulable_message_counts_every_node() -> None:
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    snap = snapshot(
        node("small1", memory="1Gi"),
        node("small2", memory="1Gi"),
        node("small3", memory="1Gi"),
        node("gpu1", memory="64Gi", taints=[gpu]),
        node("gpu2", memory="64Gi", taints=[gpu]),
    )
    [placement] = schedule_batch([pod("big", memory="2Gi")], snap)
    assert placement.message == (
        "0/5 nodes are available: 3 Insufficient memory, 2 node(s) had untolerated taint {dedicated: gpu}."
    )


def test_tolerations_open_tainted_nodes() -> None:
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    snap = snapshot(node("plain"), node("gpu", taints=[gpu]))
    tolerating = pod("t", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu"}])
    [a, b] = schedule_batch([pod("plain-pod", nodeSelector={"kind": "x"}), tolerating], snap)
    assert a.message == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    assert b.scheduled
    [only] = schedule_batch([pod("u")], snapshot(node("gpu", taints=[gpu])))
    assert only.message == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."


def test_host_ports_one_per_node_in_a_batch() -> None:
    snap = snapshot(node("n1"), node("n2"))
    placements = schedule_batch(replicas("web", 3, host_ports=[8080]), snap)
    assert [p.scheduled for p in placements] == [True, True, False]
    assert placements[0].node != placements[1].node
    assert placements[2].message == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    )


def test_placement_preference_spreads_over_label_values() -> None:
    # Zone a has four nodes, zone b one: Swarm still gives each zone half the replicas.
    nodes = [node(f"a{i}", labels={"zone": "a"}) for i in range(4)] + [node("b0", labels={"zone": "b"})]
    snap = snapshot(*nodes)
    pods = replicas("web", 6, preferences=["spread=node.labels.zone"])
    placements = schedule_batch(pods, snap)
    zones = Counter(snap.nodes[p.node].labels["zone"] for p in placements if p.node)
    assert zones == {"a": 3, "b": 3}


def test_placement_preference_falls_back_when_a_value_is_full() -> None:
    snap = snapshot(node("a0", cpu="1", labels={"zone": "a"}), node("b0", cpu="8", labels={"zone": "b"}))
    placements = schedule_batch(replicas("web", 4, cpu="600m", preferences=["spread=node.labels.zone"]), snap)
    assert Counter(p.node for p in placements) == {"a0": 1, "b0": 3}


def test_not_ready_cordoned_and_drained_nodes_get_nothing() -> None:
    snap = snapshot(
        node("ok"),
        node("down", ready=False),
        node("cordoned", unschedulable=True),
        node("paused", annotations={"shoal.io/availability": "pause"}),
        node("drained", labels={"shoal.io/availability": "drain"}),
    )
    placements = schedule_batch(replicas("web", 3), snap)
    assert {p.node for p in placements} == {"ok"}
    [lost] = schedule_batch([pod("x", nodeSelector={"none": "such"})], snap)
    assert lost.message == (
        "0/5 nodes are available: 2 node(s) were paused or drained, "
        "1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were not ready, "
        "1 node(s) were unschedulable."
    )


def test_classes_group_by_owner_and_template() -> None:
    pods = [
        PodInfo(p)
        for p in (
            pod("a", owner="rs1", template="h1"),
            pod("b", owner="rs2", template="h1"),
            pod("c", owner="rs1", template="h1"),
            pod("d", owner="rs1", template="h2"),
            pod("bare1", cpu="1"),
            pod("bare2", cpu="1"),
            pod("bare3", cpu="2"),
        )
    ]
    classes = [[p.name for p in members] for members in equivalence_classes(pods)]
    assert classes == [["a", "c"], ["b"], ["d"], ["bare1", "bare2"], ["bare3"]]


def test_batch_mixes_classes_and_keeps_input_order() -> None:
    snap = snapshot(node("n1", memory="1Gi"), node("n2", memory="1Gi"))
    pods = [pod("x0", owner="x", template="1"), pod("big", memory="4Gi"), pod("x1", owner="x", template="1")]
    placements = schedule_batch(pods, snap)
    assert [p.pod_key for p in placements] == ["default/x0", "default/big", "default/x1"]
    assert [p.scheduled for p in placements] == [True, False, True]
    assert placements[0].node != placements[2].node


def test_heavier_node_loses_to_emptier_one() -> None:
    snap = snapshot(node("busy", cpu="4"), node("idle", cpu="4"))
    snap.upsert_pod(pod("hog", cpu="3", node_name="busy"))
    [placement] = schedule_batch([pod("p", cpu="100m")], snap)
    assert placement.node == "idle"


def test_empty_cluster() -> None:
    [placement] = schedule_batch([pod("p")], snapshot())
    assert placement.message == "0/0 nodes are available: no nodes are registered."
