"""The DaemonSet controller: one active pod on every eligible node, nodes that join later too.

Kubernetes' semantics (pkg/controller/daemon):

- **eligible** ("should run") is decided by the scheduler's own static filters, so the rules
  are written once: cordon (tolerated, see below), Swarm availability, nodeSelector, required
  node affinity, Swarm constraints, taints and tolerations. Resource fit is not checked (the
  scheduler leaves a pod that does not fit Pending and says why), nor is readiness: a daemon
  pod tolerates a NotReady node and is bound once the node is Ready;
- a node that is no longer eligible keeps its pod while it "should continue running": its
  labels and affinity still match, no NoExecute taint is untolerated and it is not drained
  (a new NoSchedule taint, a cordon or a Swarm pause only stop new pods, as in Kubernetes and
  Swarm). Otherwise its daemon pods are deleted, as are those of nodes that are gone;
- each pod is created for one node with a required node affinity
  ``matchFields: metadata.name In [node]`` (the template's own required terms are replaced,
  as ``ReplaceDaemonSetPodNodeNameNodeAffinity`` does) and never with ``spec.nodeName``: the
  scheduler binds it. Tolerations are added as ``AddOrUpdateDaemonPodTolerations`` adds them:
  not-ready and unreachable (NoExecute, no tolerationSeconds: never evicted), disk-, memory-
  and pid-pressure and unschedulable (NoSchedule), network-unavailable for hostNetwork pods;
- a failed (or otherwise finished) daemon pod is deleted, and replaced by the next pass;
  duplicates on one node are deleted, the oldest is kept;
- pods carry ``controller-revision-hash`` (a hash of the template; Kubernetes keeps it in a
  ControllerRevision) and ``pod-template-generation``. RollingUpdate deletes pods of an older
  template, unavailable ones first, then available ones while fewer than ``maxUnavailable``
  (of desiredNumberScheduled, rounded up; at least 1) nodes lack an available pod; the node's
  next pass creates the new pod. OnDelete replaces a pod only when someone deletes it;
- status last: desired, current, misscheduled, ready, available (ready for
  ``minReadySeconds``), unavailable, updated, observedGeneration.

As in the ReplicaSet controller, handlers only enqueue keys, expectations keep a lagging
cache from causing a second create, creations go in slow-start batches, and matching orphans
are adopted. Not yet: ``maxSurge`` (a surge-only strategy rolls one node at a time, as with
maxUnavailable 1), ControllerRevision objects and history, the back-off before replacing a
pod that keeps failing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists
from shoal.api.kinds.columns import parse_time
from shoal.api.kinds.workload import int_or_percent_value
from shoal.client import MERGE_PATCH, Client
from shoal.client.informer import Informers, object_key
from shoal.controllers._owners import (
    is_active,
    is_ready,
    pod_from_template,
)
from shoal.controllers._podowner import PodOwner
from shoal.controllers.deployment_util import template_hash
from shoal.scheduler.filters import (
    Filter,
    NodeAffinity,
    NodeAvailability,
    NodeSelector,
    NodeUnschedulable,
    SwarmConstraints,
    TaintToleration,
)
from shoal.scheduler.filters.taints import tolerates
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.snapshot import NodeInfo

__all__ = ["DaemonSetController", "daemon_tolerations", "node_affinity_for", "target_node"]

log = logging.getLogger(__name__)

DAEMON_SET = REGISTRY.by_resource("apps", "v1", "daemonsets")
POD = REGISTRY.by_resource("", "v1", "pods")
NODE = REGISTRY.by_resource("", "v1", "nodes")
BURST = 500  # the most pods one reconcile creates

REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"

# Kubernetes' AddOrUpdateDaemonPodTolerations.
_NO_EXECUTE = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_NO_SCHEDULE = (
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
)
_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# "Should run": the scheduler's static filters but NodeReady (tolerated by every daemon pod).
SHOULD_RUN: tuple[Filter, ...] = (
    NodeUnschedulable(),
    NodeAvailability(),
    NodeSelector(),
    NodeAffinity(),
    SwarmConstraints(),
    TaintToleration(),
)
# "Should continue running": the pod's own placement rules still hold.
KEEP_RUNNING: tuple[Filter, ...] = (NodeSelector(), NodeAffinity(), SwarmConstraints())


def _now() -> datetime:
    return datetime.now(UTC)


class DaemonSetController(PodOwner):
    name = "daemonset"

    def __init__(self, client: Client, informers: Informers, *, clock: Callable[[], datetime] = _now) -> None:
        assert DAEMON_SET is not None and POD is not None and NODE is not None
        super().__init__(client, informers, DAEMON_SET)
        self.clock = clock  # a seam for tests: minReadySeconds
        self.nodes = informers.of(NODE)
        self.nodes.add_handler(self._on_node)

    # -- events: only enqueue keys ----------------------------------------------------------

    def _on_node(self, old: Object | None, new: Object | None) -> None:
        # A heartbeat or a status write that changes nothing a filter reads wakes nobody.
        if old is not None and new is not None and _placement_view(old) == _placement_view(new):
            return
        for ds in self.owners.list():
            self.queue.add(object_key(ds))

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ds = self.owners.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return  # the garbage collector removes a deleted DaemonSet's pods
        now = self.clock()
        revision = template_hash(ds["spec"]["template"], (ds.get("status") or {}).get("collisionCount"))
        probe = PodInfo(_eligibility_pod(ds))
        nodes = {n["metadata"]["name"]: NodeInfo(n) for n in self.nodes.list()}

        by_node: dict[str, list[Object]] = {}
        to_delete: list[Object] = []
        for pod in await self.claim_pods(ds):
            if pod["metadata"].get("deletionTimestamp"):
                continue  # on its way out already
            node = target_node(pod)
            if node is None or node not in nodes:
                to_delete.append(pod)  # no node, or a node that is gone
            else:
                by_node.setdefault(node, []).append(pod)

        to_create: list[str] = []
        kept: dict[str, Object] = {}  # eligible node -> its one active daemon pod
        should_run_nodes: list[str] = []
        misscheduled = 0
        for name, info in sorted(nodes.items()):
            pods = by_node.get(name, [])
            should_run, keep_running = node_should_run(probe, info)
            if should_run:
                should_run_nodes.append(name)
            active = sorted((p for p in pods if is_active(p)), key=_age)
            if not should_run and active:
                misscheduled += 1
            if not keep_running:
                to_delete.extend(pods)
                continue
            failed = [p for p in pods if not is_active(p)]
            to_delete.extend(failed)
            if active:
                kept[name] = active[0]
                to_delete.extend(active[1:])  # duplicates: the oldest stays
            elif should_run and not failed:
                to_create.append(name)  # a failed pod is replaced once its delete is seen

        to_delete.extend(self._rolling_victims(ds, revision, should_run_nodes, kept, now))
        status = self._status(ds, revision, should_run_nodes, kept, misscheduled, now)

        if self.expectations.satisfied(key) and (to_delete or to_create):
            victims = list({p["metadata"]["name"]: p for p in to_delete}.values())
            to_create = to_create[:BURST]
            # One expectation for both: a second ``expect`` would replace the first.
            self.expectations.expect(key, adds=len(to_create), deletes=len(victims))
            try:
                await self.delete_pods(key, victims)
            except BaseException:
                for _ in to_create:  # not attempted: no event will come for them
                    self.expectations.observed_add(key)
                raise
            await self._create(key, ds, revision, to_create)
        await self._write_status(ds, status)
        self._recheck_when_available(key, ds, kept, now)

    def _rolling_victims(
        self, ds: Object, revision: str, should_run: list[str], kept: dict[str, Object], now: datetime
    ) -> list[Object]:
        """Pods of an older template to delete now: every unavailable one, then available ones
        while fewer than maxUnavailable eligible nodes lack an available pod."""
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return []
        budget = max_unavailable(ds, len(should_run))
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        unavailable = sum(1 for n in should_run if n not in kept or not is_available(kept[n], min_ready, now))
        old = [kept[n] for n in should_run if n in kept and _revision(kept[n]) != revision]
        victims = [p for p in old if not is_available(p, min_ready, now)]
        for pod in old:
            if unavailable >= budget:
                break
            if is_available(pod, min_ready, now):
                victims.append(pod)
                unavailable += 1
        return victims

    def _status(
        self,
        ds: Object,
        revision: str,
        should_run: list[str],
        kept: dict[str, Object],
        misscheduled: int,
        now: datetime,
    ) -> dict[str, Any]:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        scheduled = [kept[n] for n in should_run if n in kept]
        available = sum(1 for p in scheduled if is_available(p, min_ready, now))
        return {
            "desiredNumberScheduled": len(should_run),
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": misscheduled,
            "numberReady": sum(1 for p in scheduled if is_ready(p)),
            "numberAvailable": available,
            "numberUnavailable": max(0, len(should_run) - available),
            "updatedNumberScheduled": sum(1 for p in scheduled if _revision(p) == revision),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }

    async def _create(self, key: str, ds: Object, revision: str, nodes: list[str]) -> None:
        """One pod per node, in slow-start batches (1, 2, 4, …); the caller set the expectations."""
        assert DAEMON_SET is not None and POD is not None
        todo, batch = list(nodes), 1
        while todo:
            chunk, todo = todo[:batch], todo[batch:]
            results = await asyncio.gather(
                *(self.client.create(POD, daemon_pod(ds, node, revision)) for node in chunk),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                # No watch event will come for what was not created, nor for the batches skipped.
                for _ in range(len(failures) + len(todo)):
                    self.expectations.observed_add(key)
                if isinstance(failures[0], AlreadyExists):
                    return
                raise failures[0]
            batch *= 2

    async def _write_status(self, ds: Object, status: dict[str, Any]) -> None:
        assert DAEMON_SET is not None
        current = ds.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return  # a no-op reconcile writes nothing, so it wakes nobody
        await self.client.patch(
            DAEMON_SET,
            ds["metadata"]["name"],
            {"status": status},
            ds["metadata"].get("namespace"),
            patch_type=MERGE_PATCH,
            subresource="status",
        )

    def _recheck_when_available(self, key: str, ds: Object, kept: dict[str, Object], now: datetime) -> None:
        """A ready pod becomes available minReadySeconds later, with no event to say so."""
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready <= 0:
            return
        waits = [w for p in kept.values() if (w := _available_in(p, min_ready, now)) is not None and w > 0]
        if waits:
            self.queue.add_after(key, min(waits))


# -- pods for nodes ---------------------------------------------------------------------------


def daemon_tolerations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's tolerations plus those every daemon pod gets (replacing any the
    template already has for the same key and effect)."""
    added = [{"key": k, "operator": "Exists", "effect": "NoExecute"} for k in _NO_EXECUTE]
    added += [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in _NO_SCHEDULE]
    if spec.get("hostNetwork"):
        added.append({"key": _NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    mine = {(t["key"], t["effect"]) for t in added}
    kept = [t for t in spec.get("tolerations") or [] if (t.get("key"), t.get("effect")) not in mine]
    return kept + added


def node_affinity_for(affinity: dict[str, Any] | None, node: str) -> dict[str, Any]:
    """The pod's affinity with its required node terms replaced by ``metadata.name In [node]``."""
    result = copy.deepcopy(affinity or {})
    node_affinity = result.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
    }
    return result


def _eligibility_pod(ds: Object) -> Object:
    """A daemon pod as the filters judge it: the template with the daemon tolerations, and the
    template's own affinity (not yet pinned to a node)."""
    assert DAEMON_SET is not None
    pod = pod_from_template(ds["spec"]["template"], DAEMON_SET, ds)
    pod["spec"]["tolerations"] = daemon_tolerations(pod["spec"])
    return pod


def daemon_pod(ds: Object, node: str, revision: str) -> Object:
    assert DAEMON_SET is not None
    labels = {REVISION_LABEL: revision, GENERATION_LABEL: str(ds["metadata"].get("generation", 1))}
    pod = pod_from_template(ds["spec"]["template"], DAEMON_SET, ds, extra_labels=labels)
    spec = pod["spec"]
    spec.pop("nodeName", None)
    spec["tolerations"] = daemon_tolerations(spec)
    spec["affinity"] = node_affinity_for(spec.get("affinity"), node)
    return pod


def target_node(pod: Object) -> str | None:
    """The node a daemon pod is for: where it is bound, else the one its affinity names
    (Kubernetes' GetTargetNodeName)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return None


# -- eligibility ------------------------------------------------------------------------------


def node_should_run(pod: PodInfo, node: NodeInfo) -> tuple[bool, bool]:
    """(should run, should continue running) a daemon pod like ``pod`` on ``node``."""
    if all(f.check(pod, node) for f in SHOULD_RUN if f.applies_to(pod)):
        return True, True
    keep = (
        node.availability != "drain"
        and all(f.check(pod, node) for f in KEEP_RUNNING if f.applies_to(pod))
        and all(
            any(tolerates(t, taint) for t in pod.spec.get("tolerations") or [])
            for taint in node.taints
            if taint[2] == "NoExecute"
        )
    )
    return False, keep


def _placement_view(node: Object) -> tuple[Any, ...]:
    """What the eligibility filters read from a node."""
    info = NodeInfo(node)
    return (info.labels, info.annotations, info.taints, info.unschedulable, info.platform, info.ready)


# -- pod state --------------------------------------------------------------------------------


def max_unavailable(ds: Object, desired: int) -> int:
    rolling = (ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable", 1)
    if isinstance(value, str):
        count = math.ceil(int_or_percent_value(value) * desired / 100)
    else:
        count = int_or_percent_value(value)
    return max(1, count)  # 0 only with maxSurge, which is not yet supported: one at a time


def is_available(pod: Object, min_ready: int, now: datetime) -> bool:
    wait = _available_in(pod, min_ready, now)
    return wait is not None and wait <= 0


def _available_in(pod: Object, min_ready: int, now: datetime) -> float | None:
    """Seconds until a ready pod counts as available (≤ 0: it does); None if not ready."""
    if not is_active(pod) or not is_ready(pod):
        return None
    if min_ready <= 0:
        return 0.0
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("lastTransitionTime"):
            since = (now - parse_time(condition["lastTransitionTime"])).total_seconds()
            return min_ready - since
    return None  # ready since an unknown time: not available (Kubernetes' IsPodAvailable)


def _revision(pod: Object) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL) or "")


def _age(pod: Object) -> tuple[str, str]:
    return (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"])
