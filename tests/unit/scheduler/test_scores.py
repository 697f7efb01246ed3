from __future__ import annotations

import pytest

from shoal.scheduler import LeastAllocated, PlacementPreference, SpreadReplicas
from tests.unit.scheduler.factories import info, node, pod, snapshot


def test_spread_prefers_nodes_with_fewer_replicas_of_the_owner() -> None:
    snap = snapshot(node("n"))
    s = SpreadReplicas(weight=1)
    p = info("new", owner="rs1")
    assert s.applies_to(p) and not s.applies_to(info("bare"))
    assert s.score(p, snap.nodes["n"]) == 100
    snap.upsert_pod(pod("a", owner="rs1", node_name="n"))
    snap.upsert_pod(pod("other", owner="rs2", node_name="n"))  # another owner: not counted
    assert s.score(p, snap.nodes["n"]) == 50
    snap.upsert_pod(pod("b", owner="rs1", node_name="n"))
    assert s.score(p, snap.nodes["n"]) == pytest.approx(100 / 3)


def test_least_allocated_counts_the_incoming_pod() -> None:
    snap = snapshot(node("n", cpu="4", memory="4Gi"))
    s = LeastAllocated(weight=1)
    n = snap.nodes["n"]
    assert s.score(info(), n) == 100
    assert s.score(info(cpu="2", memory="1Gi"), n) == pytest.approx(50 * (0.5 + 0.75))
    snap.upsert_pod(pod("a", cpu="4", memory="4Gi", node_name="n"))
    assert s.score(info(cpu="1"), n) == 0  # never below zero, even overcommitted
    assert s.score(info(), snapshot(node("z", cpu="0", memory="0")).nodes["z"]) == 0


def test_scores_stay_in_range() -> None:
    snap = snapshot(node("n", cpu="1", memory="1Gi"))
    for i in range(5):
        snap.upsert_pod(pod(f"p{i}", owner="o", cpu="300m", memory="300Mi", node_name="n"))
    p = info(owner="o", cpu="300m", memory="300Mi")
    for scorer in (SpreadReplicas(1), LeastAllocated(1)):
        assert 0 <= scorer.score(p, snap.nodes["n"]) <= 100


def test_placement_preference_groups_by_label_value() -> None:
    pref = PlacementPreference(weight=10)
    p = info(preferences=["spread=node.labels.zone"])
    snap = snapshot(node("a1", labels={"zone": "a"}), node("x"))
    assert pref.group_of(p, snap.nodes["a1"]) == ("a",)
    assert pref.group_of(p, snap.nodes["x"]) == ("",)  # unlabelled nodes form their own group
    assert pref.group_of(info(), snap.nodes["a1"]) == ()


def test_placement_preference_scores_the_emptiest_value_highest() -> None:
    pref = PlacementPreference(weight=10)
    scores = pref.score_groups({("a",): 3, ("b",): 2, ("c",): 2})
    assert scores == {("a",): 50, ("b",): 100, ("c",): 100}
    assert pref.score_groups({(): 4}) == {(): 0}
    assert pref.score_groups({}) == {}


def test_first_preference_weighs_most() -> None:
    pref = PlacementPreference(weight=10)
    # zone a has one pod more than zone b; within a, rack r1 is emptier.
    scores = pref.score_groups({("a", "r1"): 0, ("a", "r2"): 2, ("b", "r3"): 1})
    assert scores[("b", "r3")] > scores[("a", "r1")] > scores[("a", "r2")]
    assert all(0 <= v <= 100 for v in scores.values())
