"""The node lifecycle controller on a real in-memory control plane, with a fake clock: time
moves only when a test says so, and reconcile is called directly."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.api import Object
from shoal.client import MERGE_PATCH
from shoal.controllers.nodelifecycle import (
    LEASE_NAMESPACE,
    MESSAGE_STATUS_UNKNOWN,
    REASON_NODE_LOST,
    REASON_STATUS_UNKNOWN,
    TAINT_UNREACHABLE,
    NodeLifecycleController,
)
from tests.unit.controllers.conftest import Stack, kind, running

NODE = kind("nodes")
LEASE = kind("leases")
POD = kind("pods")
GRACE = 10.0

_renewals = itertools.count()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def controller_for(stack: Stack) -> tuple[NodeLifecycleController, FakeClock]:
    clock = FakeClock()
    return NodeLifecycleController(stack.client, stack.informers, GRACE, clock=clock), clock


async def add_node(stack: Stack, name: str, taints: list[dict[str, Any]] | None = None) -> None:
    """A node as its agent registers it: Ready, with its lease."""
    node: Object = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"taints": taints} if taints else {},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady"}]},
    }
    await stack.client.create(NODE, node)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 10, "renewTime": _renew_time()},
    }
    await stack.client.create(LEASE, lease)


async def renew(stack: Stack, name: str) -> None:
    await stack.client.patch(LEASE, name, {"spec": {"renewTime": _renew_time()}}, LEASE_NAMESPACE)
    await stack.settle()


def _renew_time() -> str:
    return f"2026-01-01T00:00:00.{next(_renewals):06d}Z"


async def add_pod(
    stack: Stack,
    name: str,
    node: str,
    *,
    owned: bool = True,
    tolerations: list[dict[str, Any]] | None = None,
) -> None:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owned:
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": True}
        meta["ownerReferences"] = [ref]
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    await stack.client.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    await stack.client.bind(POD, name, "default", node)
    await stack.client.patch(
        POD, name, {"status": {"phase": "Running"}}, "default", patch_type=MERGE_PATCH, subresource="status"
    )


async def node(stack: Stack, name: str) -> Object:
    return await stack.client.get(NODE, name)


async def pod_status(stack: Stack, name: str) -> dict[str, Any]:
    pod = await stack.client.get(POD, name, "default")
    return dict(pod.get("status") or {})


def ready(obj: Object) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def unreachable_taints(obj: Object) -> set[str]:
    return {t["effect"] for t in obj["spec"].get("taints") or [] if t["key"] == TAINT_UNREACHABLE}


async def two_nodes_one_pod_each(stack: Stack) -> None:
    for name in ("n1", "n2"):
        await add_node(stack, name)
        await add_pod(stack, f"{name}-pod", name)
    await stack.settle()


async def reconcile_all(stack: Stack, controller: NodeLifecycleController, *names: str) -> None:
    for name in names:
        await controller.reconcile(name)
    await stack.settle()


async def test_a_node_renewing_its_lease_stays_ready(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        clock.advance(8)
        await renew(stack, "n1")
        await renew(stack, "n2")
        clock.advance(7)  # 15 s since the start, 7 s since the last renewal
        await reconcile_all(stack, controller, "n1", "n2")
        for name in ("n1", "n2"):
            assert ready(await node(stack, name))["status"] == "True"
            assert unreachable_taints(await node(stack, name)) == set()
            assert (await pod_status(stack, f"{name}-pod"))["phase"] == "Running"


async def test_a_stale_lease_marks_the_node_and_fails_its_pods(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        clock.advance(GRACE - 1)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1", "n2")
        assert ready(await node(stack, "n1"))["status"] == "True"  # not yet: grace not over
        clock.advance(1)
        await reconcile_all(stack, controller, "n1", "n2")

        lost = await node(stack, "n1")
        condition = ready(lost)
        assert (condition["status"], condition["reason"]) == ("Unknown", REASON_STATUS_UNKNOWN)
        assert condition["message"] == MESSAGE_STATUS_UNKNOWN and condition["lastTransitionTime"]
        assert unreachable_taints(lost) == {"NoSchedule", "NoExecute"}
        status = await pod_status(stack, "n1-pod")
        assert (status["phase"], status["reason"]) == ("Failed", REASON_NODE_LOST)
        assert "n1" in status["message"]

        healthy = await node(stack, "n2")
        assert ready(healthy)["status"] == "True" and unreachable_taints(healthy) == set()
        assert (await pod_status(stack, "n2-pod"))["phase"] == "Running"

        # Idempotent: a second pass writes nothing.
        await reconcile_all(stack, controller, "n1")
        assert (await node(stack, "n1"))["metadata"]["resourceVersion"] == lost["metadata"]["resourceVersion"]


async def test_a_renewed_lease_lifts_the_taints_and_deletes_owned_lost_pods(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        await add_pod(stack, "bare", "n1", owned=False)
        await stack.settle()
        clock.advance(GRACE)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "bare"))["reason"] == REASON_NODE_LOST

        clock.advance(30)
        await renew(stack, "n1")  # the agent is back
        await reconcile_all(stack, controller, "n1")
        back = await node(stack, "n1")
        assert unreachable_taints(back) == set()
        assert ready(back)["status"] == "Unknown"  # the agent's to set True, not ours
        names = {p["metadata"]["name"] for p in (await stack.client.list(POD, "default"))["items"]}
        assert names == {"bare", "n2-pod"}  # the owned copy is replaced elsewhere: gone
        assert (await pod_status(stack, "bare"))["phase"] == "Failed"


async def test_pods_tolerating_unreachable_are_failed_when_their_toleration_runs_out(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        base = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
        await add_pod(stack, "patient", "n1", tolerations=[{**base, "tolerationSeconds": 30}])
        await add_pod(stack, "forever", "n1", tolerations=[base])
        await add_pod(stack, "other-taint", "n1", tolerations=[{"key": "x", "operator": "Exists"}])
        await stack.settle()
        clock.advance(GRACE)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "n1-pod"))["phase"] == "Failed"
        assert (await pod_status(stack, "other-taint"))["phase"] == "Failed"
        assert (await pod_status(stack, "patient"))["phase"] == "Running"

        clock.advance(29)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "patient"))["phase"] == "Running"
        clock.advance(1)
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "patient"))["reason"] == REASON_NODE_LOST

        clock.advance(1000)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "forever"))["phase"] == "Running"


async def test_when_every_node_is_unreachable_pods_are_left_alone(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        clock.advance(GRACE + 5)
        await reconcile_all(stack, controller, "n1", "n2")
        for name in ("n1", "n2"):
            assert ready(await node(stack, name))["status"] == "Unknown"
            assert (await pod_status(stack, f"{name}-pod"))["phase"] == "Running"
        await renew(stack, "n2")  # one comes back: the other one really is lost
        await reconcile_all(stack, controller, "n1")
        assert (await pod_status(stack, "n1-pod"))["reason"] == REASON_NODE_LOST


async def test_a_restarted_controller_lifts_old_taints_only_after_a_renewal(stack: Stack) -> None:
    taints = [{"key": TAINT_UNREACHABLE, "effect": e} for e in ("NoSchedule", "NoExecute")]
    await add_node(stack, "n1", taints)  # tainted by a previous manager
    controller, clock = controller_for(stack)
    async with running(stack):
        await stack.settle()
        await reconcile_all(stack, controller, "n1")
        assert unreachable_taints(await node(stack, "n1")) == {"NoSchedule", "NoExecute"}
        clock.advance(2)
        await renew(stack, "n1")
        await reconcile_all(stack, controller, "n1")
        assert unreachable_taints(await node(stack, "n1")) == set()


async def test_a_deleted_node_is_a_no_op(stack: Stack) -> None:
    controller, clock = controller_for(stack)
    async with running(stack):
        await two_nodes_one_pod_each(stack)
        await stack.client.delete(NODE, "n1")
        await stack.settle()
        clock.advance(GRACE * 3)
        await renew(stack, "n2")
        await reconcile_all(stack, controller, "n1", "nothing")
        assert (await pod_status(stack, "n1-pod"))["phase"] == "Running"
        assert [n["metadata"]["name"] for n in (await stack.client.list(NODE))["items"]] == ["n2"]


async def heartbeat_until(stack: Stack, done: Callable[[], Awaitable[bool]], *alive: str) -> None:
    """Renew the leases of the ``alive`` nodes, as their agents would, until ``done``."""
    async with asyncio.timeout(5):
        while not await done():
            for name in alive:
                await renew(stack, name)
            await asyncio.sleep(0.05)


async def test_the_loop_acts_on_deadlines_and_events_alone(stack: Stack) -> None:
    """The running controller, real clock, a short grace: no one calls reconcile; the
    deadline timers and the lease events do it all."""
    controller = NodeLifecycleController(stack.client, stack.informers, grace_period=0.3)

    async def n1_pod_failed() -> bool:
        return bool((await pod_status(stack, "n1-pod"))["phase"] == "Failed")

    async def n1_recovered() -> bool:
        pods = (await stack.client.list(POD, "default"))["items"]
        gone = "n1-pod" not in {p["metadata"]["name"] for p in pods}
        return gone and not unreachable_taints(await node(stack, "n1"))

    async with running(stack):
        await two_nodes_one_pod_each(stack)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(controller.run())
            try:
                await heartbeat_until(stack, n1_pod_failed, "n2")
                assert ready(await node(stack, "n1"))["status"] == "Unknown"
                assert (await pod_status(stack, "n2-pod"))["phase"] == "Running"
                await heartbeat_until(stack, n1_recovered, "n1", "n2")  # n1's agent is back
            finally:
                controller.queue.shut_down()
