"""The DaemonSet controller, reconcile by reconcile, on a real in-memory control plane."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api import Object
from shoal.client import MERGE_PATCH
from shoal.client.informer import object_key
from shoal.controllers._owners import owner_reference
from shoal.controllers.daemonset import (
    GENERATION_LABEL,
    REVISION_LABEL,
    DaemonSetController,
    daemon_tolerations,
    max_unavailable,
    target_node,
)
from shoal.scheduler import Snapshot, schedule_batch
from tests.unit.controllers.conftest import Stack, kind, pods_of, running

DS = kind("daemonsets")
POD = kind("pods")
NODE = kind("nodes")

EXPECTED_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def daemon_set(name: str, **pod_spec: Any) -> Object:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], **pod_spec},
            },
        },
    }


async def add_node(
    stack: Stack,
    name: str,
    labels: dict[str, str] | None = None,
    *,
    taints: list[dict[str, Any]] | None = None,
    unschedulable: bool = False,
    annotations: dict[str, str] | None = None,
) -> None:
    """A node as its agent registers it: Ready, with its labels."""
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    node: Object = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady"}]},
    }
    await stack.client.create(NODE, node)


async def converge(stack: Stack, controller: DaemonSetController, key: str) -> Object:
    """Reconcile until the cache shows each pass's writes, as the loop does when the events of
    its own writes come back (a failed pod: deleted, then replaced; status last)."""
    for _ in range(3):
        await stack.settle()
        await controller.reconcile(key)
    await stack.settle()
    ds = stack.informers.of(DS).get(key)
    assert ds is not None
    return ds


def active(stack: Stack, ds: Object) -> list[Object]:
    return [
        p
        for p in pods_of(stack, ds)
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


def placement(stack: Stack, ds: Object) -> dict[str, int]:
    """Node name -> how many active daemon pods are meant for it."""
    counts: dict[str, int] = {}
    for pod in active(stack, ds):
        node = target_node(pod)
        assert node is not None
        counts[node] = counts.get(node, 0) + 1
    return counts


async def make_ready(stack: Stack, pod: Object) -> None:
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    await stack.client.patch(
        POD,
        pod["metadata"]["name"],
        {"status": status},
        "default",
        patch_type=MERGE_PATCH,
        subresource="status",
    )


async def test_one_pod_per_node_pinned_by_affinity_with_the_daemon_tolerations(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        for name in ("node-a", "node-b", "node-c"):
            await add_node(stack, name)
        ds = await stack.client.create(DS, daemon_set("agent"))
        ds = await converge(stack, controller, object_key(ds))
        assert placement(stack, ds) == {"node-a": 1, "node-b": 1, "node-c": 1}
        pod = next(p for p in pods_of(stack, ds) if target_node(p) == "node-b")
        assert "nodeName" not in pod["spec"]  # the scheduler binds it
        assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}
            ]
        }
        assert pod["spec"]["tolerations"] == EXPECTED_TOLERATIONS
        labels = pod["metadata"]["labels"]
        assert labels["app"] == "agent" and labels[GENERATION_LABEL] == "1" and labels[REVISION_LABEL]
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("DaemonSet", "agent", True)
        # The scheduler's own filters put every pod on the node it was made for.
        snapshot = Snapshot()
        for node in stack.informers.of(NODE).list():
            snapshot.upsert_node(node)
        pods = pods_of(stack, ds)
        placed = schedule_batch(pods, snapshot)
        assert [p.node for p in placed] == [target_node(p) for p in pods]
        status = ds["status"]
        assert status["desiredNumberScheduled"] == 3 and status["currentNumberScheduled"] == 3
        assert status["updatedNumberScheduled"] == 3 and status["numberMisscheduled"] == 0
        assert status["observedGeneration"] == 1


async def test_a_node_that_joins_later_gets_its_pod(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "node-a")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        await converge(stack, controller, key)
        await stack.settle()
        while len(controller.queue):  # drain what the setup enqueued
            done = await controller.queue.get()
            controller.queue.done(done)
        await add_node(stack, "node-b")
        await stack.settle()
        assert len(controller.queue) == 1  # the node's arrival woke the DaemonSet
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"node-a": 1, "node-b": 1}
        assert ds["status"]["desiredNumberScheduled"] == 2


async def test_node_events_that_change_nothing_a_filter_reads_wake_nobody(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "node-a")
        ds = await stack.client.create(DS, daemon_set("agent"))
        await converge(stack, controller, object_key(ds))
        while len(controller.queue):
            done = await controller.queue.get()
            controller.queue.done(done)
        addresses = {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
        await stack.client.patch(
            NODE, "node-a", {"status": addresses}, None, patch_type=MERGE_PATCH, subresource="status"
        )
        await stack.settle()
        assert len(controller.queue) == 0
        await stack.client.patch(NODE, "node-a", {"metadata": {"labels": {"zone": "a"}}}, None)
        await stack.settle()
        assert len(controller.queue) == 1


async def test_node_selector_chooses_nodes_and_a_relabelled_node_loses_its_pod(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "gpu-1", {"gpu": "yes"})
        await add_node(stack, "cpu-1", {"gpu": "no"})
        ds = await stack.client.create(DS, daemon_set("driver", nodeSelector={"gpu": "yes"}))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"gpu-1": 1}
        await stack.client.patch(NODE, "cpu-1", {"metadata": {"labels": {"gpu": "yes"}}}, None)
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"gpu-1": 1, "cpu-1": 1}
        await stack.client.patch(NODE, "gpu-1", {"metadata": {"labels": {"gpu": "no"}}}, None)
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"cpu-1": 1}
        assert ds["status"]["desiredNumberScheduled"] == 1 and ds["status"]["numberMisscheduled"] == 0


async def test_required_affinity_and_swarm_constraints_choose_nodes(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "a", {"zone": "east", "disk": "ssd"})
        await add_node(stack, "b", {"zone": "west", "disk": "ssd"})
        await add_node(stack, "c", {"zone": "east", "disk": "hdd"})
        spec = daemon_set("picky")
        spec["spec"]["template"]["metadata"]["annotations"] = {
            "shoal.io/constraints": "node.labels.disk==ssd"
        }
        term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["east"]}]}
        spec["spec"]["template"]["spec"]["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
        ds = await stack.client.create(DS, spec)
        ds = await converge(stack, controller, object_key(ds))
        assert placement(stack, ds) == {"a": 1}


async def test_tainted_node_is_skipped_unless_tolerated(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "plain")
        await add_node(stack, "gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        ds = await stack.client.create(DS, daemon_set("plain-agent"))
        ds = await converge(stack, controller, object_key(ds))
        assert placement(stack, ds) == {"plain": 1}
        toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        tolerant = await stack.client.create(DS, daemon_set("gpu-agent", tolerations=[toleration]))
        tolerant = await converge(stack, controller, object_key(tolerant))
        assert placement(stack, tolerant) == {"plain": 1, "gpu": 1}
        pod = next(p for p in pods_of(stack, tolerant) if target_node(p) == "gpu")
        assert pod["spec"]["tolerations"] == [toleration, *EXPECTED_TOLERATIONS]


async def test_a_new_no_schedule_taint_keeps_the_pod_a_no_execute_taint_removes_it(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        (first,) = pods_of(stack, ds)
        taint = {"key": "maintenance", "value": "soon", "effect": "NoSchedule"}
        await stack.client.patch(NODE, "n", {"spec": {"taints": [taint]}}, None)
        ds = await converge(stack, controller, key)
        assert [p["metadata"]["name"] for p in active(stack, ds)] == [first["metadata"]["name"]]
        assert ds["status"]["desiredNumberScheduled"] == 0 and ds["status"]["numberMisscheduled"] == 1
        await stack.client.patch(NODE, "n", {"spec": {"taints": [{**taint, "effect": "NoExecute"}]}}, None)
        ds = await converge(stack, controller, key)
        assert pods_of(stack, ds) == [] and ds["status"]["numberMisscheduled"] == 0


async def test_cordoned_node_gets_its_pod_drained_node_does_not(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "cordoned", unschedulable=True)
        await add_node(stack, "drained", annotations={"shoal.io/availability": "drain"})
        ds = await stack.client.create(DS, daemon_set("agent"))
        ds = await converge(stack, controller, object_key(ds))
        assert placement(stack, ds) == {"cordoned": 1}


async def test_a_deleted_node_loses_its_pod(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "stays")
        await add_node(stack, "goes")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        await stack.client.bind(
            POD,
            next(p for p in pods_of(stack, ds) if target_node(p) == "goes")["metadata"]["name"],
            "default",
            "goes",
        )
        await stack.client.delete(NODE, "goes", None)
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"stays": 1} and len(pods_of(stack, ds)) == 1
        assert ds["status"]["desiredNumberScheduled"] == 1 and ds["status"]["currentNumberScheduled"] == 1


async def test_duplicates_on_a_node_are_trimmed_to_the_oldest(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        (original,) = pods_of(stack, ds)
        duplicate = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "zz-duplicate",
                "namespace": "default",
                "labels": original["metadata"]["labels"],
                "ownerReferences": [owner_reference(DS, ds)],
            },
            "spec": original["spec"],
        }
        await stack.client.create(POD, duplicate)
        ds = await converge(stack, controller, key)
        assert [p["metadata"]["name"] for p in pods_of(stack, ds)] == [original["metadata"]["name"]]


async def test_adopts_a_matching_orphan_instead_of_creating(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        orphan = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"},
        }
        await stack.client.create(POD, orphan)
        spec = daemon_set("agent")
        spec["spec"]["updateStrategy"] = {"type": "OnDelete"}  # else rolled: it has no revision
        ds = await stack.client.create(DS, spec)
        ds = await converge(stack, controller, object_key(ds))
        assert [p["metadata"]["name"] for p in pods_of(stack, ds)] == ["stray"]
        assert ds["status"]["currentNumberScheduled"] == 1 and ds["status"]["updatedNumberScheduled"] == 0


async def test_a_failed_pod_is_deleted_and_replaced(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        (first,) = pods_of(stack, ds)
        await stack.client.patch(
            POD,
            first["metadata"]["name"],
            {"status": {"phase": "Failed", "reason": "Evicted"}},
            "default",
            patch_type=MERGE_PATCH,
            subresource="status",
        )
        ds = await converge(stack, controller, key)
        (second,) = pods_of(stack, ds)
        assert second["metadata"]["name"] != first["metadata"]["name"] and target_node(second) == "n"


async def test_status_counts_ready_and_available_pods(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        for name in ("a", "b", "c"):
            await add_node(stack, name)
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        for pod in pods_of(stack, ds)[:2]:
            await make_ready(stack, pod)
        ds = await converge(stack, controller, key)
        assert ds["status"] == {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberMisscheduled": 0,
            "numberReady": 2,
            "numberAvailable": 2,
            "numberUnavailable": 1,
            "updatedNumberScheduled": 3,
            "observedGeneration": 1,
        }


async def test_rolling_update_replaces_one_node_at_a_time(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        for name in ("a", "b", "c"):
            await add_node(stack, name)
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        old = {p["metadata"]["name"] for p in pods_of(stack, ds)}
        for pod in pods_of(stack, ds):
            await make_ready(stack, pod)
        await stack.client.patch(
            DS,
            "agent",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
            "default",
        )
        seen_old: list[int] = []
        for _ in range(4):
            ds = await converge(stack, controller, key)
            pods = active(stack, ds)
            seen_old.append(len([p for p in pods if p["metadata"]["name"] in old]))
            # Never more than maxUnavailable (1) node without a ready pod.
            ready = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            assert len(ready) >= 2
            for pod in pods:
                if pod not in ready:
                    await make_ready(stack, pod)
        assert seen_old == [2, 1, 0, 0]  # one old pod at a time, each once its successor was ready
        pods = active(stack, ds)
        assert placement(stack, ds) == {"a": 1, "b": 1, "c": 1}
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"v2"}
        assert {p["metadata"]["labels"][GENERATION_LABEL] for p in pods} == {"2"}
        assert ds["status"]["updatedNumberScheduled"] == 3 and ds["status"]["observedGeneration"] == 2


async def test_on_delete_leaves_old_pods_until_someone_deletes_them(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        spec = daemon_set("agent")
        spec["spec"]["updateStrategy"] = {"type": "OnDelete"}
        ds = await stack.client.create(DS, spec)
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        (old,) = pods_of(stack, ds)
        await stack.client.patch(
            DS,
            "agent",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
            "default",
        )
        ds = await converge(stack, controller, key)
        assert [p["metadata"]["name"] for p in pods_of(stack, ds)] == [old["metadata"]["name"]]
        assert ds["status"]["updatedNumberScheduled"] == 0
        await stack.client.delete(POD, old["metadata"]["name"], "default")
        ds = await converge(stack, controller, key)
        (new,) = pods_of(stack, ds)
        assert new["spec"]["containers"][0]["image"] == "v2" and ds["status"]["updatedNumberScheduled"] == 1


async def test_reconciling_again_changes_nothing(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        for name in ("a", "b"):
            await add_node(stack, name)
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        current = await converge(stack, controller, key)
        pods = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods_of(stack, current)}
        again = await converge(stack, controller, key)
        assert again["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
        assert {
            p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods_of(stack, again)
        } == pods


async def test_a_deleted_daemon_set_is_a_no_op(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "n")
        await stack.settle()
        await controller.reconcile("default/nothing")
        assert stack.informers.of(POD).list() == []


async def test_does_not_act_again_before_seeing_its_own_creates(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        for name in ("a", "b", "c"):
            await add_node(stack, name)
        created = await stack.client.create(DS, daemon_set("agent"))
        await stack.settle()
    # The informers are stopped: their caches lag every write from here on.
    await controller.reconcile(object_key(created))
    await controller.reconcile(object_key(created))
    listed = await stack.client.list(POD, "default")
    assert len(listed["items"]) == 3


async def test_a_not_ready_node_is_eligible_a_paused_node_keeps_but_gets_no_new_pod(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "busy")
        await add_node(stack, "sick")
        await stack.client.patch(
            NODE,
            "sick",
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "AgentNotReady"}]}},
            None,
            patch_type=MERGE_PATCH,
            subresource="status",
        )
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        # Daemon pods tolerate not-ready: the scheduler binds this one once the node is Ready.
        assert placement(stack, ds) == {"busy": 1, "sick": 1}
        pause = {"metadata": {"annotations": {"shoal.io/availability": "pause"}}}
        await stack.client.patch(NODE, "busy", pause, None)
        (kept,) = [p for p in pods_of(stack, ds) if target_node(p) == "busy"]
        await stack.client.delete(
            POD,
            next(p for p in pods_of(stack, ds) if target_node(p) == "sick")["metadata"]["name"],
            "default",
        )
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"busy": 1, "sick": 1}
        assert kept["metadata"]["name"] in {p["metadata"]["name"] for p in pods_of(stack, ds)}
        assert ds["status"]["desiredNumberScheduled"] == 1 and ds["status"]["numberMisscheduled"] == 1
        await stack.client.delete(POD, kept["metadata"]["name"], "default")
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"sick": 1}  # paused: no new placement


async def test_waits_for_both_its_deletes_and_its_creates_of_one_pass(stack: Stack) -> None:
    controller = DaemonSetController(stack.client, stack.informers)
    async with running(stack):
        await add_node(stack, "old")
        ds = await stack.client.create(DS, daemon_set("agent"))
        key = object_key(ds)
        await converge(stack, controller, key)
        await stack.client.delete(NODE, "old", None)
        await add_node(stack, "new")
        await stack.settle()
        expected: list[tuple[int, int]] = []
        expect = controller.expectations.expect

        def spy(key: str, *, adds: int = 0, deletes: int = 0) -> None:
            expected.append((adds, deletes))
            expect(key, adds=adds, deletes=deletes)

        controller.expectations.expect = spy  # type: ignore[method-assign]
        await controller.reconcile(key)  # one delete and one create, expected together
        assert expected == [(1, 1)]
        await stack.settle()
        assert controller.expectations.satisfied(key)
        ds = await converge(stack, controller, key)
        assert placement(stack, ds) == {"new": 1} and len(pods_of(stack, ds)) == 1


async def test_a_pod_is_available_min_ready_seconds_after_it_became_ready(stack: Stack) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    controller = DaemonSetController(stack.client, stack.informers, clock=lambda: now)
    async with running(stack):
        await add_node(stack, "n")
        spec = daemon_set("agent")
        spec["spec"]["minReadySeconds"] = 30
        ds = await stack.client.create(DS, spec)
        key = object_key(ds)
        ds = await converge(stack, controller, key)
        (pod,) = pods_of(stack, ds)
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        status = {"phase": "Running", "conditions": [ready]}
        await stack.client.patch(
            POD,
            pod["metadata"]["name"],
            {"status": status},
            "default",
            patch_type=MERGE_PATCH,
            subresource="status",
        )
        ds = await converge(stack, controller, key)
        assert ds["status"]["numberReady"] == 1 and ds["status"]["numberAvailable"] == 0
        now += timedelta(seconds=30)
        ds = await converge(stack, controller, key)
        assert ds["status"]["numberAvailable"] == 1 and ds["status"]["numberUnavailable"] == 0


def test_max_unavailable_is_a_count_or_a_percentage_rounded_up_and_at_least_one() -> None:
    def ds(value: int | str) -> Object:
        return {
            "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": value}}}
        }

    assert max_unavailable(ds(3), 10) == 3
    assert max_unavailable(ds("25%"), 10) == 3
    assert max_unavailable(ds("10%"), 3) == 1
    assert max_unavailable(ds(0), 10) == 1  # maxSurge is not yet supported: one at a time


def test_daemon_tolerations_replace_the_templates_own_for_the_same_taint() -> None:
    mine = {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 5,
    }
    other = {"key": "dedicated", "operator": "Exists"}
    tolerations = daemon_tolerations({"tolerations": [mine, other], "hostNetwork": True})
    assert tolerations[0] == other
    assert tolerations[1:-1] == EXPECTED_TOLERATIONS
    assert tolerations[-1] == {
        "key": "node.kubernetes.io/network-unavailable",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
