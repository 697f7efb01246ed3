"""The node lifecycle controller: a node whose agent stops heartbeating is given up on.

Every agent renews a Lease named after its node in ``kube-node-lease`` (every 2 s). This
controller notes, on its own monotonic clock, when each lease was last seen to *change*;
the timestamps inside the lease are not compared with ours, because clocks differ between
machines. A node whose lease has not changed for ``grace_period`` seconds (counting from
the controller's start, or the node's first sighting, at the earliest) is unreachable:

- its Ready condition becomes ``Unknown`` (reason NodeStatusUnknown), shown as NotReady;
- it gets the taints ``node.kubernetes.io/unreachable`` NoSchedule (the scheduler places
  nothing more there) and NoExecute (what pods may tolerate for a while);
- its active pods are marked ``Failed`` with reason NodeLost through ``/status``, so their
  ReplicaSet or Job replaces them elsewhere (a Failed pod is inactive). A pod tolerating
  the unreachable NoExecute taint is failed only after its ``tolerationSeconds``, never if
  it tolerates it without a limit. Kubernetes deletes such pods after a default 300 s
  toleration; shoal fails them at once and keeps them visible, which is what makes the
  "agent killed → pods elsewhere within 15 s" promise possible.

When the lease changes again (the agent is back) the controller removes the taints and
deletes the NodeLost pods that have a controller owner: their replacements already run
elsewhere, so a stale copy would only show up as a duplicate. The agent stops the
processes of pods it finds Failed or deleted either way. Pods without an owner stay, Failed,
for their user to see. The controller never writes Ready=True: the agent owns that
condition and posts it with its heartbeat, so the two never fight over it.

When every node is unreachable at once, more likely the manager lost the network (or was
paused) than every machine died, so pods are left alone (Kubernetes' "full disruption"):
the nodes are still marked and tainted, and recover as soon as their leases move again.

Deadlines are re-checked with ``queue.add_after``; the clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

from shoal.api import REGISTRY, Object
from shoal.api.errors import NotFound
from shoal.client import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Client
from shoal.client.informer import Informers, object_key
from shoal.controllers._controller import Controller
from shoal.controllers._owners import controller_of, is_active

log = logging.getLogger(__name__)

NODE = REGISTRY.by_resource("", "v1", "nodes")
LEASE = REGISTRY.by_resource("coordination.k8s.io", "v1", "leases")
POD = REGISTRY.by_resource("", "v1", "pods")

LEASE_NAMESPACE = "kube-node-lease"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
UNREACHABLE_EFFECTS = ("NoSchedule", "NoExecute")
REASON_STATUS_UNKNOWN = "NodeStatusUnknown"
MESSAGE_STATUS_UNKNOWN = "Shoal agent stopped posting node status."
REASON_NODE_LOST = "NodeLost"
# A timer may fire a little before our clock reaches the deadline (the event loop's clock
# may be coarser); waking slightly late costs nothing, waking early costs a wasted pass.
TIMER_SLACK = 0.01

Clock = Callable[[], float]


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(
        self,
        client: Client,
        informers: Informers,
        grace_period: float = 10.0,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        assert NODE is not None and LEASE is not None and POD is not None
        self.client = client
        self.grace_period = grace_period
        self.clock = clock
        self.nodes = informers.of(NODE)
        self.leases = informers.of(LEASE)
        self.pods = informers.of(POD)
        self._changed_at: dict[str, float] = {}  # node -> when its lease last changed (or first seen)
        self._heard_from: set[str] = set()  # nodes whose lease changed since we started
        self._wakeups: dict[str, float] = {}  # node -> the deadline a timer is already set for
        self._pods_on: dict[str, set[str]] = {}  # node -> keys of the pods bound to it
        self.nodes.add_handler(self._on_node)
        self.leases.add_handler(self._on_lease)
        self.pods.add_handler(self._on_pod)

    # -- events: note times, index pods, enqueue node names ---------------------------------

    def _on_node(self, old: Object | None, new: Object | None) -> None:
        node = new or old
        assert node is not None
        name = node["metadata"]["name"]
        if new is None:
            for state in (self._changed_at, self._wakeups):
                state.pop(name, None)
            self._heard_from.discard(name)
        else:  # a node with no lease yet still gets its grace period from now
            self._changed_at.setdefault(name, self.clock())
        self.queue.add(name)

    def _on_lease(self, old: Object | None, new: Object | None) -> None:
        lease = new or old
        assert lease is not None
        if lease["metadata"].get("namespace") != LEASE_NAMESPACE:
            return  # leader election and other leases
        name = lease["metadata"]["name"]
        # A first sighting (our start, or a new lease) starts the clock; only a renewal seen
        # by us proves the agent is alive, so a restarted controller does not untaint a node
        # that is still dead. A change of metadata alone (labels, owners) is no heartbeat.
        if new is not None and old is None:
            self._changed_at[name] = self.clock()
        elif new is not None and old is not None and old.get("spec") != new.get("spec"):
            self._changed_at[name] = self.clock()
            self._heard_from.add(name)
        self.queue.add(name)

    def _on_pod(self, old: Object | None, new: Object | None) -> None:
        pod = new or old
        assert pod is not None
        key = object_key(pod)
        before, after = _node_of(old), _node_of(new)
        if before and before != after:
            self._pods_on.get(before, set()).discard(key)
            if not self._pods_on.get(before):
                self._pods_on.pop(before, None)
        if after:
            self._pods_on.setdefault(after, set()).add(key)
            # A pod bound to an unreachable node must be failed too; a NodeLost pod on a
            # node that is back must go. Other pod changes do not concern this controller.
            if self._is_stale(after, self.clock()) or _is_node_lost(new):
                self.queue.add(after)

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            return  # deleted: nothing to watch over (pods still bound to it are left as they are)
        now = self.clock()
        deadline = self._changed_at.setdefault(key, now) + self.grace_period
        if now < deadline:
            if key in self._heard_from:
                await self._recover(node)
            self._wake_at(key, deadline, now)
            return
        node = await self._mark_unknown(node)
        await self._taint(node)
        if self._full_disruption(now):
            log.warning("%s: every node is unreachable; not failing their pods", self.name)
            # No event may come for this node when the others come back: look again later.
            self._wake_at(key, now + self.grace_period, now)
            return
        next_eviction = await self._evict(key, since=deadline, now=now)
        if next_eviction is not None:
            self._wake_at(key, next_eviction, now)

    def _is_stale(self, name: str, now: float) -> bool:
        changed = self._changed_at.get(name)
        return changed is not None and now - changed >= self.grace_period

    def _full_disruption(self, now: float) -> bool:
        return all(self._is_stale(n["metadata"]["name"], now) for n in self.nodes.list())

    def _wake_at(self, key: str, due: float, now: float) -> None:
        """Reconcile ``key`` again at ``due``, unless a timer set earlier comes first (it will
        set the next one): one pending timer per node, however often its lease is renewed."""
        pending = self._wakeups.get(key)
        if pending is not None and now < pending <= due:
            return
        self._wakeups[key] = due
        self.queue.add_after(key, due - now + TIMER_SLACK)

    def _pods_of(self, name: str) -> list[Object]:
        pods = (self.pods.get(k) for k in sorted(self._pods_on.get(name, ())))
        return [p for p in pods if p is not None and _node_of(p) == name]

    # -- an unreachable node -------------------------------------------------------------------

    async def _mark_unknown(self, node: Object) -> Object:
        """Ready=Unknown, merged by condition type so the agent's other conditions stay; the
        write is pinned to the version we read, so an agent's late update wins a conflict."""
        assert NODE is not None
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is not None and ready.get("status") == "Unknown":
            return node
        condition = {
            "type": "Ready",
            "status": "Unknown",
            "reason": REASON_STATUS_UNKNOWN,
            "message": MESSAGE_STATUS_UNKNOWN,
            "lastTransitionTime": _now_rfc3339(),
        }
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "status": {"conditions": [condition]},
        }
        log.info("%s: node %s stopped renewing its lease; marking it NotReady", self.name, _name(node))
        return await self.client.patch(
            NODE, _name(node), patch, patch_type=STRATEGIC_MERGE_PATCH, subresource="status"
        )

    async def _taint(self, node: Object) -> Object:
        taints: list[dict[str, Any]] = list((node.get("spec") or {}).get("taints") or [])
        present = {(t.get("key"), t.get("effect")) for t in taints}
        missing = [e for e in UNREACHABLE_EFFECTS if (TAINT_UNREACHABLE, e) not in present]
        if not missing:
            return node
        added = _now_rfc3339()
        taints += [{"key": TAINT_UNREACHABLE, "effect": e, "timeAdded": added} for e in missing]
        return await self._write_taints(node, taints)

    async def _evict(self, name: str, *, since: float, now: float) -> float | None:
        """Fail the active pods whose toleration of the node being unreachable has run out;
        return when the next one runs out, if any."""
        due_now: list[Object] = []
        next_due: float | None = None
        for pod in self._pods_of(name):
            if not is_active(pod):
                continue
            due = since + _tolerated_for(pod)
            if due <= now:
                due_now.append(pod)
            elif math.isfinite(due):
                next_due = due if next_due is None else min(next_due, due)
        if due_now:
            log.info("%s: failing %d pod(s) of unreachable node %s", self.name, len(due_now), name)
        await _gather_ignoring_not_found(self._fail(pod, name) for pod in due_now)
        return next_due

    async def _fail(self, pod: Object, node: str) -> None:
        assert POD is not None
        meta = pod["metadata"]
        status = {
            "phase": "Failed",
            "reason": REASON_NODE_LOST,
            "message": f"Node {node} which was running pod {meta['name']} is unresponsive",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _now_rfc3339()}],
        }
        # Pinned: if the pod finished (or was failed) meanwhile, the conflict re-reads it.
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        await self.client.patch(
            POD,
            meta["name"],
            patch,
            meta.get("namespace"),
            patch_type=STRATEGIC_MERGE_PATCH,
            subresource="status",
        )

    # -- a node that is back -------------------------------------------------------------------

    async def _recover(self, node: Object) -> None:
        assert POD is not None
        taints = (node.get("spec") or {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != TAINT_UNREACHABLE]
        if len(kept) != len(taints):
            log.info("%s: node %s renews its lease again; removing its taints", self.name, _name(node))
            await self._write_taints(node, kept)
        stale = [
            p
            for p in self._pods_of(_name(node))
            if _is_node_lost(p)
            and controller_of(p) is not None
            and not p["metadata"].get("deletionTimestamp")
        ]
        await _gather_ignoring_not_found(
            self.client.delete(POD, p["metadata"]["name"], p["metadata"].get("namespace")) for p in stale
        )

    async def _write_taints(self, node: Object, taints: list[dict[str, Any]]) -> Object:
        assert NODE is not None
        # Taints have no merge key: the whole list is written, pinned to what we read.
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"taints": taints},
        }
        return await self.client.patch(NODE, _name(node), patch, patch_type=MERGE_PATCH)


def _tolerated_for(pod: Object) -> float:
    """How long ``pod`` may stay on an unreachable node (core/v1 GetMinTolerationTime): 0 if no
    toleration matches the NoExecute taint, the least ``tolerationSeconds`` among those that
    do, forever if none of them sets one."""
    matching = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if _tolerates_unreachable(t)]
    if not matching:
        return 0.0
    limits = [
        max(0.0, float(t["tolerationSeconds"])) for t in matching if t.get("tolerationSeconds") is not None
    ]
    return min(limits) if limits else math.inf


def _tolerates_unreachable(toleration: dict[str, Any]) -> bool:
    if (toleration.get("effect") or "NoExecute") != "NoExecute":
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return key in ("", TAINT_UNREACHABLE)
    return operator == "Equal" and key == TAINT_UNREACHABLE and not toleration.get("value")


def _node_of(pod: Object | None) -> str:
    return str(((pod or {}).get("spec") or {}).get("nodeName") or "")


def _is_node_lost(pod: Object | None) -> bool:
    status = (pod or {}).get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == REASON_NODE_LOST


def _name(obj: Object) -> str:
    return str(obj["metadata"]["name"])


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _gather_ignoring_not_found(writes: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Run the writes together; one already gone is done, any other error is raised (the key
    is retried) after all have been tried."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, NotFound):
            raise result
