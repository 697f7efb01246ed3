"""The ReplicaSet controller, reconcile by reconcile, on a real in-memory control plane."""

from __future__ import annotations

from typing import Any

from shoal.api import Object
from shoal.client import MERGE_PATCH
from shoal.client.informer import object_key
from shoal.controllers.replicaset import ReplicaSetController
from tests.unit.controllers.conftest import Stack, kind, pods_of, running

RS = kind("replicasets")
POD = kind("pods")


def replica_set(name: str, replicas: int) -> Object:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


async def converge(stack: Stack, controller: ReplicaSetController, key: str) -> Object:
    """Reconcile, then reconcile again once the cache shows the result, as the loop does when
    the events of its own writes come back (status counts what the previous pass saw)."""
    for _ in range(2):
        await stack.settle()
        await controller.reconcile(key)
    await stack.settle()
    rs = stack.informers.of(RS).get(key)
    assert rs is not None
    return rs


async def set_pod_status(stack: Stack, pod: Object, **status: Any) -> None:
    await stack.client.patch(
        POD,
        pod["metadata"]["name"],
        {"status": status},
        "default",
        patch_type=MERGE_PATCH,
        subresource="status",
    )


async def test_creates_the_missing_pods_once(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        rs = await stack.client.create(RS, replica_set("web", 3))
        key = object_key(rs)
        await stack.settle()
        rs = await converge(stack, controller, key)
        pods = pods_of(stack, rs)
        assert len(pods) == 3
        pod = pods[0]
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"] == {"app": "web"}
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("ReplicaSet", "web", True)
        assert rs["status"]["replicas"] == 3 and rs["status"]["observedGeneration"] == 1


async def test_replaces_deleted_and_failed_pods(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        rs = await stack.client.create(RS, replica_set("web", 2))
        key = object_key(rs)
        rs = await converge(stack, controller, key)
        first, second = pods_of(stack, rs)
        await stack.client.delete(POD, first["metadata"]["name"], "default")
        await set_pod_status(stack, second, phase="Failed", reason="NodeLost")
        rs = await converge(stack, controller, key)
        pods = pods_of(stack, rs)
        active = [p for p in pods if (p.get("status") or {}).get("phase") != "Failed"]
        assert len(active) == 2 and first["metadata"]["name"] not in {p["metadata"]["name"] for p in pods}
        assert rs["status"]["replicas"] == 2


async def test_scale_down_removes_unplaced_then_youngest(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        rs = await stack.client.create(RS, replica_set("web", 3))
        key = object_key(rs)
        rs = await converge(stack, controller, key)
        pods = sorted(pods_of(stack, rs), key=lambda p: p["metadata"]["name"])
        for pod in pods[:2]:
            await stack.client.bind(POD, pod["metadata"]["name"], "default", "node-1")
        await set_pod_status(
            stack, pods[0], phase="Running", conditions=[{"type": "Ready", "status": "True"}]
        )
        await stack.client.patch(RS, "web", {"spec": {"replicas": 1}}, "default")
        rs = await converge(stack, controller, key)
        left = pods_of(stack, rs)
        assert [p["metadata"]["name"] for p in left] == [pods[0]["metadata"]["name"]]
        assert rs["status"] == {**rs["status"], "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}


async def test_adopts_matching_orphans_and_leaves_others_pods_alone(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        orphan = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        await stack.client.create(POD, orphan)
        foreign = {
            **orphan,
            "metadata": {
                **orphan["metadata"],
                "name": "foreign",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "other",
                        "uid": "x",
                        "controller": True,
                    }
                ],
            },
        }
        await stack.client.create(POD, foreign)
        rs = await stack.client.create(RS, replica_set("web", 2))
        key = object_key(rs)
        rs = await converge(stack, controller, key)
        names = {p["metadata"]["name"] for p in pods_of(stack, rs)}
        assert "stray" in names and "foreign" not in names and len(names) == 2


async def test_a_deleted_replica_set_is_a_no_op(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        await controller.reconcile("default/nothing")
        assert stack.informers.of(POD).list() == []


async def test_does_not_act_again_before_seeing_its_own_creates(stack: Stack) -> None:
    controller = ReplicaSetController(stack.client, stack.informers)
    async with running(stack):
        rs = await stack.client.create(RS, replica_set("web", 3))
        await stack.settle()
    # The informers are stopped: their caches lag every write from here on.
    await controller.reconcile(object_key(rs))
    await controller.reconcile(object_key(rs))
    listed = await stack.client.list(POD, "default")
    assert len(listed["items"]) == 3
