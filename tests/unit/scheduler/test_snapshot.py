from __future__ import annotations

from shoal.scheduler import PodInfo, Snapshot
from tests.unit.scheduler.factories import node, pod, snapshot


def test_pod_events_move_usage_between_nodes() -> None:
    snap = snapshot(node("n1"), node("n2"))
    snap.upsert_pod(pod("p", cpu="1", owner="rs", node_name="n1", host_ports=[80]))
    assert snap.nodes["n1"].requested_cpu == 1000
    assert snap.nodes["n1"].owner_counts == {"rs": 1}
    snap.upsert_pod(pod("p", cpu="1", owner="rs", node_name="n1", host_ports=[80]))  # replayed event
    assert snap.nodes["n1"].requested_cpu == 1000
    snap.upsert_pod(pod("p", cpu="1", owner="rs", node_name="n2", host_ports=[80]))
    assert (snap.nodes["n1"].requested_cpu, snap.nodes["n2"].requested_cpu) == (0, 1000)
    assert snap.nodes["n1"].owner_counts == {} and snap.nodes["n1"].ports == {}
    snap.upsert_pod(pod("p", cpu="1", node_name="n2", phase="Failed"))
    assert snap.nodes["n2"].requested_cpu == 0 and snap.node_of("default/p") is None
    snap.remove_pod("default/unknown")  # deleting what was never counted is fine


def test_pods_of_an_unknown_node_count_once_it_appears() -> None:
    snap = Snapshot()
    snap.upsert_pod(pod("early", memory="1Gi", node_name="late"))
    assert len(snap) == 0
    snap.upsert_node(node("late"))
    assert snap.nodes["late"].requested_memory == 2**30
    snap.remove_node("late")
    assert "late" not in snap.nodes
    snap.upsert_node(node("late"))  # re-registered: its pods are still there
    assert snap.nodes["late"].requested_memory == 2**30
    snap.remove_node("late")
    snap.remove_pod("default/early")
    snap.upsert_node(node("late"))
    assert snap.nodes["late"].requested_memory == 0


def test_node_update_keeps_pods_and_rereads_node() -> None:
    snap = snapshot(node("n", cpu="2"))
    snap.upsert_pod(pod("p", cpu="1", node_name="n"))
    generation = snap.nodes["n"].generation
    snap.upsert_node(node("n", cpu="8", ready=False, labels={"zone": "a"}))
    info = snap.nodes["n"]
    assert (info.allocatable_cpu, info.requested_cpu, info.ready) == (8000, 1000, False)
    assert info.labels == {"zone": "a"} and info.generation == generation + 1


def test_assume_and_forget() -> None:
    snap = snapshot(node("n"))
    p = PodInfo(pod("p", cpu="500m", owner="rs"))
    snap.assume(p, "n")
    assert snap.nodes["n"].requested_cpu == 500 and snap.node_of(p.key) == "n"
    snap.forget(p.key)
    assert snap.nodes["n"].requested_cpu == 0 and snap.node_of(p.key) is None
    # Once the binding is observed the pod is no longer merely assumed: forget keeps it.
    snap.assume(p, "n")
    snap.upsert_pod(pod("p", cpu="500m", owner="rs", node_name="n"))
    snap.forget(p.key)
    assert snap.nodes["n"].requested_cpu == 500 and snap.nodes["n"].owner_counts == {"rs": 1}
    snap.forget("default/never-seen")


def test_an_update_racing_the_binding_keeps_the_assumption() -> None:
    snap = snapshot(node("n"))
    p = PodInfo(pod("p", cpu="500m"))
    snap.assume(p, "n")
    snap.upsert_pod(pod("p", cpu="500m"))  # still unbound in the store: a status write, say
    assert snap.nodes["n"].requested_cpu == 500
    snap.upsert_pod(pod("p", cpu="500m", phase="Failed"))
    assert snap.nodes["n"].requested_cpu == 0


def test_snapshot_never_modifies_the_objects_it_reads() -> None:
    n, p = node("n"), pod("p", cpu="1", node_name="n")
    before = (repr(n), repr(p))
    snap = snapshot(n)
    snap.upsert_pod(p)
    assert (repr(n), repr(p)) == before


def test_capacity_when_allocatable_missing() -> None:
    n = node("n", cpu="2", memory="1Gi")
    n["status"]["capacity"] = n["status"].pop("allocatable")
    info = snapshot(n).nodes["n"]
    assert (info.allocatable_cpu, info.allocatable_memory) == (2000, 2**30)
