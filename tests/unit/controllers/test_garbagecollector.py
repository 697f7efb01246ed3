"""The garbage collector on a real in-memory control plane: Background, Orphan and
Foreground propagation, replaced and lagging owners, several owners, cluster-scoped owners.

Most tests drive the collector by hand (``drain``): one key at a time, waiting after each
for the informers to catch up, so that an invariant can be checked between steps. One runs
the real loop and waits on a condition re-checked at every informer event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shoal.api import Kind, Object
from shoal.api.errors import NotFound
from shoal.client import MERGE_PATCH
from shoal.controllers.garbagecollector import GarbageCollector
from shoal.controllers.gc_graph import gc_key, parse_key
from tests.unit.controllers.conftest import Stack, kind, running

DEPLOYMENT, RS, POD = kind("deployments"), kind("replicasets"), kind("pods")
CONFIGMAP, NODE, LEASE, NAMESPACE = kind("configmaps"), kind("nodes"), kind("leases"), kind("namespaces")
LABELS = {"app": "web"}
TEMPLATE = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def ref(owner_kind: Kind, owner: Object, *, block: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner_kind.api_version,
        "kind": owner_kind.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": block,
        "blockOwnerDeletion": block,
    }


def meta(name: str, *owners: dict[str, Any], namespace: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "ownerReferences": list(owners), **extra}


async def deployment_tree(stack: Stack, pods: int = 2) -> tuple[Object, Object, list[Object]]:
    """A Deployment owning a ReplicaSet owning ``pods`` Pods, all made by hand."""
    spec = {"replicas": pods, "selector": {"matchLabels": LABELS}, "template": TEMPLATE}
    deploy = await stack.client.create(
        DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"), "spec": spec}
    )
    rs = await stack.client.create(
        RS,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta("web-1", ref(DEPLOYMENT, deploy)),
            "spec": spec,
        },
    )
    made = [await pod(stack, f"web-1-{i}", ref(RS, rs)) for i in range(pods)]
    return deploy, rs, made


async def pod(stack: Stack, name: str, *owners: dict[str, Any], **extra: Any) -> Object:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, *owners, **extra),
        "spec": TEMPLATE["spec"],
    }
    return await stack.client.create(POD, body)


async def config_map(stack: Stack, name: str, *owners: dict[str, Any], namespace: str = "default") -> Object:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, *owners, namespace=namespace)}
    return await stack.client.create(CONFIGMAP, body)


async def live(stack: Stack, k: Kind, obj: Object) -> Object | None:
    try:
        return await stack.client.get(k, obj["metadata"]["name"], obj["metadata"].get("namespace"))
    except NotFound:
        return None


async def drain(
    stack: Stack, gc: GarbageCollector, check: Callable[[], Awaitable[None]] | None = None
) -> int:
    """Reconcile queued keys one at a time until the queue stays empty; ``check`` after each."""
    for steps in range(500):
        await stack.settle()
        if not len(gc.queue):
            return steps
        key = await gc.queue.get()
        try:
            await gc.reconcile(key)
        finally:
            gc.queue.done(key)
        if check is not None:
            await check()
    raise AssertionError("the garbage collector never went quiet")


async def test_background_cascades_deployment_replicaset_pods(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        deploy, rs, pods = await deployment_tree(stack)
        bystander = await pod(stack, "other")
        await drain(stack, gc)
        assert all([await live(stack, POD, p) for p in pods]), "owned objects are left alone"
        await stack.client.delete(DEPLOYMENT, "web", "default")
        await drain(stack, gc)
        assert await live(stack, DEPLOYMENT, deploy) is None
        assert await live(stack, RS, rs) is None
        assert [await live(stack, POD, p) for p in pods] == [None, None]
        assert await live(stack, POD, bystander) is not None


async def test_background_cascade_with_the_loop_running(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    changed = asyncio.Event()
    for informer in stack.informers.all():
        informer.add_handler(lambda old, new: changed.set())
    async with running(stack), asyncio.TaskGroup() as tasks:
        loop = tasks.create_task(gc.run(workers=2))
        await deployment_tree(stack, pods=3)
        await stack.client.delete(DEPLOYMENT, "web", "default")
        async with asyncio.timeout(5):
            while True:
                changed.clear()  # before the check: a write after it sets the event again
                listed = [await stack.client.list(k, "default") for k in (RS, POD)]
                if not any(found["items"] for found in listed):
                    break
                await changed.wait()
        gc.queue.shut_down()
        await loop


async def test_orphan_releases_the_dependents(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        deploy, rs, pods = await deployment_tree(stack)
        await stack.settle()
        marked = await stack.client.delete(DEPLOYMENT, "web", "default", propagation_policy="Orphan")
        assert marked["metadata"]["finalizers"] == ["orphan"]
        await drain(stack, gc)
        assert await live(stack, DEPLOYMENT, deploy) is None
        kept = await live(stack, RS, rs)
        assert kept is not None and not kept["metadata"].get("ownerReferences")
        for p in pods:  # only the deleted owner's direct dependents are released
            found = await live(stack, POD, p)
            assert found is not None and found["metadata"]["ownerReferences"] == [ref(RS, rs)]
        assert await drain(stack, gc) == 0, "idempotent: nothing left to do"
        await gc.reconcile(gc_key(DEPLOYMENT, "default", "web"))


async def test_foreground_deletes_the_dependents_first(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        deploy, rs, pods = await deployment_tree(stack)
        loose = await config_map(stack, "loose", ref(DEPLOYMENT, deploy, block=False))
        await stack.settle()
        seen_deleting: set[str] = set()

        async def owners_outlive_dependents() -> None:
            d, r = await live(stack, DEPLOYMENT, deploy), await live(stack, RS, rs)
            left = [p for p in pods if await live(stack, POD, p) is not None]
            if r is None:
                assert not left, "the ReplicaSet went before its pods"
            if d is None:
                assert r is None, "the Deployment went before its ReplicaSet"
            for obj in (d, r):
                if obj is not None and obj["metadata"].get("deletionTimestamp"):
                    seen_deleting.add(obj["kind"])

        await stack.client.delete(DEPLOYMENT, "web", "default", propagation_policy="Foreground")
        await drain(stack, gc, owners_outlive_dependents)
        assert await live(stack, DEPLOYMENT, deploy) is None
        assert await live(stack, CONFIGMAP, loose) is None, "non-blocking dependents go too"
        assert seen_deleting == {"Deployment", "ReplicaSet"}, "each owner waited, marked, for its dependents"


async def test_foreground_waits_for_a_dependent_that_is_still_deleting(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        owner = await config_map(stack, "owner")
        held = await pod(stack, "held", ref(CONFIGMAP, owner), finalizers=["example.com/hold"])
        await stack.client.delete(CONFIGMAP, "owner", "default", propagation_policy="Foreground")
        await drain(stack, gc)
        await gc.reconcile(gc_key(CONFIGMAP, "default", "owner"))  # again: it must still wait
        waiting = await live(stack, CONFIGMAP, owner)
        dependent = await live(stack, POD, held)
        assert waiting is not None and waiting["metadata"]["finalizers"] == ["foregroundDeletion"]
        # Deleted with Foreground in turn; the collector has done its part, the hold remains.
        assert dependent is not None and dependent["metadata"]["finalizers"] == ["example.com/hold"]
        await stack.client.patch(
            POD,
            "held",
            {"metadata": {"finalizers": None}},
            "default",
            patch_type=MERGE_PATCH,
        )
        await drain(stack, gc)
        assert await live(stack, POD, held) is None
        assert await live(stack, CONFIGMAP, owner) is None


async def test_foreground_keeps_a_dependent_that_another_owner_holds(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        going, staying = await config_map(stack, "going"), await config_map(stack, "staying")
        shared = await pod(stack, "shared", ref(CONFIGMAP, going), ref(CONFIGMAP, staying, block=False))
        await stack.client.delete(CONFIGMAP, "going", "default", propagation_policy="Foreground")
        await drain(stack, gc)
        assert await live(stack, CONFIGMAP, going) is None
        found = await live(stack, POD, shared)
        assert found is not None and found["metadata"]["ownerReferences"] == [
            ref(CONFIGMAP, staying, block=False)
        ]


async def test_a_dependent_of_a_replaced_owner_is_deleted(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        first = await config_map(stack, "owner")
        dependent = await pod(stack, "dependent", ref(CONFIGMAP, first))
        await drain(stack, gc)
        await stack.client.delete(CONFIGMAP, "owner", "default")
        second = await config_map(stack, "owner")  # same name, another uid, before the collector runs
        await drain(stack, gc)
        assert await live(stack, POD, dependent) is None
        assert (await live(stack, CONFIGMAP, second) or {})["metadata"]["uid"] == second["metadata"]["uid"]


async def test_an_owner_missing_from_a_lagging_cache_is_confirmed_live(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        owner = await config_map(stack, "owner")
        dependent = await pod(stack, "dependent", ref(CONFIGMAP, owner))
        await stack.settle()
        # The ConfigMap cache has not seen the owner yet (its watch lags behind the Pods').
        monkeypatch.setattr(stack.informers.of(CONFIGMAP), "get", lambda key: None)
        await gc.reconcile(gc_key(POD, "default", "dependent"))
        assert await live(stack, POD, dependent) is not None


async def test_a_dependent_with_two_owners_loses_only_the_dangling_reference(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        gone, kept = await config_map(stack, "gone"), await config_map(stack, "kept")
        shared = await pod(stack, "shared", ref(CONFIGMAP, gone), ref(CONFIGMAP, kept, block=False))
        await stack.client.delete(CONFIGMAP, "gone", "default")
        await drain(stack, gc)
        found = await live(stack, POD, shared)
        assert found is not None and found["metadata"]["ownerReferences"] == [
            ref(CONFIGMAP, kept, block=False)
        ]


async def test_cluster_scoped_owners(stack: Stack) -> None:
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        node = await stack.client.create(
            NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
        )
        lease = await stack.client.create(
            LEASE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": meta("n1", ref(NODE, node), namespace="kube-node-lease"),
                "spec": {"holderIdentity": "n1"},
            },
        )
        team = await stack.client.create(
            NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
        )
        quota = await config_map(stack, "team-quota", ref(NAMESPACE, team))
        await drain(stack, gc)
        assert await live(stack, LEASE, lease) is not None and await live(stack, CONFIGMAP, quota) is not None
        await stack.client.delete(NODE, "n1")
        await stack.client.delete(NAMESPACE, "team")
        await drain(stack, gc)
        assert await live(stack, LEASE, lease) is None
        assert await live(stack, CONFIGMAP, quota) is None


async def test_a_node_owning_a_lease_is_checked_by_name_alone(stack: Stack) -> None:
    # The owner is looked up without the dependent's namespace: a live Node keeps its Lease.
    gc = GarbageCollector(stack.client, stack.informers)
    async with running(stack):
        node = await stack.client.create(
            NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
        )
        held = await config_map(stack, "held", ref(NODE, node), namespace="kube-node-lease")
        await stack.settle()
        await gc.reconcile(gc_key(CONFIGMAP, "kube-node-lease", "held"))
        assert await live(stack, CONFIGMAP, held) is not None


def test_queue_keys_name_kind_namespace_and_name() -> None:
    assert gc_key(RS, "default", "web") == "apps/v1/ReplicaSet/default/web"
    assert gc_key(NODE, None, "n1") == "v1/Node//n1"
    assert parse_key("apps/v1/ReplicaSet/default/web") == (RS, "default", "web")
    assert parse_key("v1/Node//n1") == (NODE, None, "n1")
    assert parse_key("example.com/v1/Widget/default/w") is None
    assert parse_key("nonsense") is None
