from __future__ import annotations

from shoal.scheduler import schedule_batch
from shoal.scheduler.filters import FitCPU, FitMemory, FitPods, HostPorts, MaxReplicasPerNode
from shoal.scheduler.snapshot import NodeInfo
from tests.unit.scheduler.factories import info, node, node_info, pod, replicas, snapshot


def test_cpu_and_memory_count_what_is_already_bound() -> None:
    snap = snapshot(node("n", cpu="1", memory="1Gi"))
    snap.upsert_pod(info("unbound", cpu="600m", memory="512Mi").obj)  # takes nothing yet
    snap.upsert_pod(info("done", cpu="600m", node_name="n", phase="Succeeded").obj)  # terminal
    bound = info("c", cpu="600m", memory="600Mi", node_name="n")
    snap.upsert_pod(bound.obj)
    n = snap.nodes["n"]
    assert (n.requested_cpu, n.requested_memory) == (600, 600 * 2**20)
    assert not FitCPU().check(info(cpu="500m"), n)
    assert FitCPU().check(info(cpu="400m"), n)
    assert not FitMemory().check(info(memory="500Mi"), n)
    assert FitMemory().check(info(memory="424Mi"), n)
    assert FitCPU().explain(2) == "2 Insufficient cpu"
    assert FitMemory().explain(1) == "1 Insufficient memory"


def test_pods_without_requests_skip_resource_filters() -> None:
    assert not FitCPU().applies_to(info())
    assert not FitMemory().applies_to(info())
    assert FitCPU().applies_to(info(cpu="1m"))


def test_init_containers_and_overhead_in_requests() -> None:
    p = info(cpu="100m", memory="1Mi", overhead={"cpu": "50m"})
    p.spec["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Ki"}}}]
    assert (p.requests.cpu, p.requests.memory) == (1050, 2**20)


def test_too_many_pods() -> None:
    snap = snapshot(node("n", pods=2))
    for name in ("a", "b"):
        snap.upsert_pod(info(name, node_name="n").obj)
    assert not FitPods().check(info(), snap.nodes["n"])
    snap.remove_pod("default/a")
    assert FitPods().check(info(), snap.nodes["n"])
    assert FitPods().explain(4) == "4 Too many pods"


def test_missing_pods_allocatable_defaults_to_kubelet_max() -> None:
    assert NodeInfo(node("n", pods=None)).allocatable_pods == 110


def test_host_ports() -> None:
    f = HostPorts()
    assert not f.applies_to(info())
    snap = snapshot(node("n"))
    snap.upsert_pod(info("web", node_name="n", host_ports=[8080]).obj)
    n = snap.nodes["n"]
    assert not f.check(info(host_ports=[8080]), n)
    assert f.check(info(host_ports=[8081]), n)
    assert f.explain(1) == "1 node(s) didn't have free ports for the requested pod ports"
    # A specific address does not conflict with another specific address of the same port...
    specific = info("s", node_name="n", host_ports=[9000])
    specific.spec["containers"][0]["ports"][0]["hostIP"] = "10.0.0.1"
    snap.upsert_pod(specific.obj)
    other = info("o", host_ports=[9000])
    other.spec["containers"][0]["ports"][0]["hostIP"] = "10.0.0.2"
    assert f.check(other, n)
    # ...but the wildcard conflicts with any.
    assert not f.check(info(host_ports=[9000]), n)
    udp = info("u", host_ports=[8080])
    udp.spec["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert f.check(udp, n)
    snap.remove_pod("default/web")
    assert f.check(info(host_ports=[8080]), node_info())
    assert f.check(info(host_ports=[8080]), n)


def test_pod_level_requests_replace_the_containers_sum() -> None:
    p = info(cpu="100m", memory="1Mi", resources={"requests": {"cpu": "2", "memory": "1Gi"}})
    assert (p.requests.cpu, p.requests.memory) == (2000, 2**30)


def test_max_replicas_per_node() -> None:
    f = MaxReplicasPerNode()
    limit = {"shoal.io/max-replicas-per-node": "1"}
    p = info(owner="rs")
    p.annotations.update(limit)
    assert f.applies_to(p) and not f.applies_to(info(owner="rs"))
    snap = snapshot(node("n"))
    assert f.check(p, snap.nodes["n"])
    snap.upsert_pod(pod("a", owner="rs", node_name="n"))
    assert not f.check(p, snap.nodes["n"])
    assert f.explain(1) == "1 node(s) already ran the Pod's maximum replicas per node"
    pods = replicas("rs2", 3)
    for one in pods:
        one["metadata"]["annotations"].update(limit)
    placements = schedule_batch(pods, snapshot(node("n1"), node("n2")))
    assert [p.scheduled for p in placements] == [True, True, False]
    assert placements[2].rejections == (("node(s) already ran the Pod's maximum replicas per node", 2),)


def test_malformed_max_replicas_is_reported() -> None:
    bad = pod("b", owner="rs")
    bad["metadata"]["annotations"]["shoal.io/max-replicas-per-node"] = "zero"
    [placement] = schedule_batch([bad], snapshot(node("n")))
    assert placement.message == (
        "pod has an invalid shoal.io/max-replicas-per-node annotation: 'zero' is not an integer ≥ 1"
    )
