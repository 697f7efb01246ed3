"""The Deployment controller: keeps one ReplicaSet per pod template and moves replicas from
the old ones to the new one, as the Deployment's strategy allows.

A Deployment owns ReplicaSets named ``<deployment>-<pod-template-hash>``; the ReplicaSet
controller turns those into pods. This controller only reads and writes Deployments and
ReplicaSets, and judges progress by the ReplicaSets' status (``replicas``,
``availableReplicas``), never by looking at pods itself.

One reconcile, in Kubernetes' order:
1. claim ReplicaSets: those it controls, and orphans its selector matches (adopted);
2. find the new ReplicaSet (its template equals the Deployment's) and the old ones, and
   keep the revision annotations in step;
3. roll: Recreate (old to 0, wait for their pods to go, then the new one up) or
   RollingUpdate (new one up within maxSurge, old ones down within maxUnavailable); each
   reconcile makes one step and returns, since its writes change what the next step sees;
4. once complete, delete old ReplicaSets beyond revisionHistoryLimit;
5. write status last, and only when it changed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from datetime import UTC, datetime

from shoal.api import Object
from shoal.api.errors import AlreadyExists, Conflict, NotFound
from shoal.api.kinds import DEPLOYMENT, REPLICA_SET
from shoal.api.selectors import LabelSelector
from shoal.client._interface import Client
from shoal.client.informer import Informers, object_key
from shoal.controllers._controller import Controller
from shoal.controllers._owners import controller_of, is_controlled_by, owner_reference
from shoal.controllers.deployment_util import (
    HASH_LABEL,
    REVISION,
    deployment_status,
    fenceposts,
    is_complete,
    is_rolling,
    new_rs_replicas,
    oldest_first,
    recheck_after,
    revision,
    spec_replicas,
    status_count,
    template_hash,
    total,
    without_hash,
)

__all__ = ["HASH_LABEL", "REVISION", "DeploymentController"]


def _now() -> datetime:
    return datetime.now(UTC)


class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, client: Client, informers: Informers, *, clock: Callable[[], datetime] = _now) -> None:
        super().__init__()
        self.client = client
        self.clock = clock  # a seam for tests: condition timestamps and progress deadlines
        self.deployments = informers.of(DEPLOYMENT)
        self.replica_sets = informers.of(REPLICA_SET)
        self.deployments.add_handler(self._on_deployment)
        self.replica_sets.add_handler(self._on_replica_set)

    # -- event handlers: they only enqueue Deployment keys ---------------------------------

    def _on_deployment(self, old: Object | None, new: Object | None) -> None:
        obj = new or old
        if obj is not None:
            self.queue.add(object_key(obj))

    def _on_replica_set(self, old: Object | None, new: Object | None) -> None:
        for rs in (old, new):
            if rs is None:
                continue
            ref = controller_of(rs)
            if ref is None:
                # An orphan may be adopted by any Deployment whose selector matches it;
                # a deleted orphan concerns nobody.
                if rs is new:
                    for deployment in self._matching_deployments(rs):
                        self.queue.add(object_key(deployment))
            elif ref.get("kind") == DEPLOYMENT.kind and ref.get("apiVersion") == DEPLOYMENT.api_version:
                namespace = rs["metadata"].get("namespace")
                self.queue.add(f"{namespace}/{ref['name']}" if namespace else str(ref["name"]))

    def _matching_deployments(self, rs: Object) -> list[Object]:
        namespace = rs["metadata"].get("namespace")
        labels = rs["metadata"].get("labels") or {}
        return [
            d
            for d in self.deployments.list()
            if d["metadata"].get("namespace") == namespace and _selector(d).matches(labels)
        ]

    # -- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return  # deleted: the garbage collector removes its ReplicaSets
        deployment = copy.deepcopy(cached)
        selector = _selector(deployment)
        if selector.empty:
            return  # selecting everything would adopt every ReplicaSet: never act on it
        claimed = await self._claim(deployment, selector)
        if deployment["metadata"].get("deletionTimestamp"):
            await self._write_status(key, deployment, self._find_new(deployment, claimed), claimed, "")
            return
        if deployment["spec"].get("paused"):
            new_rs, rss = await self._paused(deployment, claimed)
        elif is_rolling(deployment):
            new_rs, rss = await self._rolling_update(deployment, claimed)
        else:
            new_rs, rss = await self._recreate(deployment, claimed)
        existed = {rs["metadata"]["name"] for rs in claimed}
        created = new_rs is not None and new_rs["metadata"]["name"] not in existed
        await self._write_status(key, deployment, new_rs, rss, "created" if created else "")

    async def _claim(self, deployment: Object, selector: LabelSelector) -> list[Object]:
        """The ReplicaSets this Deployment controls, adopting matching orphans (copies)."""
        namespace = deployment["metadata"].get("namespace")
        claimed: list[Object] = []
        can_adopt: bool | None = None  # asked of the API once, and only if an orphan matches
        for cached in self.replica_sets.list():
            if cached["metadata"].get("namespace") != namespace:
                continue
            if is_controlled_by(cached, deployment):
                claimed.append(copy.deepcopy(cached))
                continue
            labels = cached["metadata"].get("labels") or {}
            if controller_of(cached) is not None or not selector.matches(labels):
                continue  # someone else's, or not ours to take
            if cached["metadata"].get("deletionTimestamp") or deployment["metadata"].get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._still_exists(deployment)
            if not can_adopt:
                continue
            refs = [
                *(cached["metadata"].get("ownerReferences") or []),
                owner_reference(DEPLOYMENT, deployment),
            ]
            patch = {
                "metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": cached["metadata"]["resourceVersion"],
                }
            }
            claimed.append(await self.client.patch(REPLICA_SET, cached["metadata"]["name"], patch, namespace))
        return claimed

    async def _still_exists(self, deployment: Object) -> bool:
        """The cache may hold a Deployment already deleted, or deleted and recreated under
        the same name: adopt only for the one that really exists now."""
        meta = deployment["metadata"]
        try:
            live = await self.client.get(DEPLOYMENT, meta["name"], meta.get("namespace"))
        except NotFound:
            return False
        return bool(
            live["metadata"].get("uid") == meta.get("uid") and not live["metadata"].get("deletionTimestamp")
        )

    def _find_new(self, deployment: Object, rss: list[Object]) -> Object | None:
        """The ReplicaSet running the current template (the oldest, should there be two)."""
        template = deployment["spec"]["template"]
        for rs in sorted(rss, key=lambda r: r["metadata"].get("creationTimestamp", "")):
            if without_hash(rs["spec"].get("template") or {}) == template:
                return rs
        return None

    async def _sync_revision(
        self, deployment: Object, rss: list[Object], *, create: bool, replicas: Callable[[list[Object]], int]
    ) -> tuple[Object | None, list[Object]]:
        """Find (or create) the new ReplicaSet and give it and the Deployment the revision
        after every old one, so ``rollout history`` orders them. Returns (new, old)."""
        new_rs = self._find_new(deployment, rss)
        old = [rs for rs in rss if rs is not new_rs]
        next_revision = max((revision(rs) for rs in old), default=0) + 1
        if new_rs is not None and revision(new_rs) < next_revision:
            # An old template came back (a rollback): its ReplicaSet becomes the newest.
            new_rs["metadata"].setdefault("annotations", {})[REVISION] = str(next_revision)
            new_rs = await self.client.update(REPLICA_SET, new_rs)
        elif new_rs is None and create:
            new_rs = await self._create_new(deployment, replicas(rss), next_revision)
        if new_rs is not None:
            wanted = str(revision(new_rs))
            annotations = deployment["metadata"].setdefault("annotations", {})
            if annotations.get(REVISION) != wanted:
                annotations[REVISION] = wanted
                updated = await self.client.update(DEPLOYMENT, deployment)
                deployment["metadata"] = updated["metadata"]  # the new resourceVersion, for status
        return new_rs, old

    async def _create_new(self, deployment: Object, replicas: int, next_revision: int) -> Object:
        meta = deployment["metadata"]
        spec = deployment["spec"]
        pod_hash = template_hash(spec["template"], (deployment.get("status") or {}).get("collisionCount"))
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        rs: Object = {
            "apiVersion": REPLICA_SET.api_version,
            "kind": REPLICA_SET.kind,
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta.get("namespace"),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(next_revision)},
                "ownerReferences": [owner_reference(DEPLOYMENT, deployment)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            return await self.client.create(REPLICA_SET, rs)
        except AlreadyExists:
            existing = await self.client.get(REPLICA_SET, rs["metadata"]["name"], meta.get("namespace"))
        if (
            is_controlled_by(existing, deployment)
            and without_hash(existing["spec"]["template"]) == spec["template"]
        ):
            return existing  # our own create, not yet in the cache
        # A hash collision with a ReplicaSet of another template: count it, so the next
        # attempt hashes to a fresh name (k8s' status.collisionCount), and try again.
        status = deployment.setdefault("status", {})
        status["collisionCount"] = status.get("collisionCount", 0) + 1
        await self.client.update(DEPLOYMENT, deployment, subresource="status")
        raise Conflict(f'replicaset "{rs["metadata"]["name"]}" exists with another template; retrying')

    async def _scale(self, rs: Object, replicas: int) -> Object:
        """Set a ReplicaSet's replicas with compare-and-swap on the version this reconcile read."""
        if spec_replicas(rs) == replicas:
            return rs
        rs["spec"]["replicas"] = replicas
        return await self.client.update(REPLICA_SET, rs)

    # -- strategies -----------------------------------------------------------------------

    async def _paused(self, deployment: Object, rss: list[Object]) -> tuple[Object | None, list[Object]]:
        """A paused Deployment starts no rollout (template edits wait for resume), but a
        change of replicas still reaches the one ReplicaSet that runs pods (k8s'
        FindActiveOrLatest); with several active, proportional scaling is not done yet."""
        new_rs, old = await self._sync_revision(deployment, rss, create=False, replicas=lambda _: 0)
        all_rss = _all(new_rs, old)
        active = [rs for rs in all_rss if spec_replicas(rs) > 0]
        target = active[0] if len(active) == 1 else None
        if not active:
            target = new_rs or (oldest_first(old)[-1] if old else None)
        if target is not None:
            scaled = await self._scale(target, int(deployment["spec"].get("replicas", 1)))
            all_rss = [scaled if rs is target else rs for rs in all_rss]
            new_rs = scaled if target is new_rs else new_rs
        return new_rs, all_rss

    async def _recreate(self, deployment: Object, rss: list[Object]) -> tuple[Object | None, list[Object]]:
        """Old pods all go before any new one starts (for apps that cannot run two versions)."""
        desired = int(deployment["spec"].get("replicas", 1))
        new_rs, old = await self._sync_revision(deployment, rss, create=False, replicas=lambda _: desired)
        if any(spec_replicas(rs) > 0 for rs in old):
            old = [await self._scale(rs, 0) for rs in old]
            return new_rs, _all(new_rs, old)
        if total(old, lambda rs: status_count(rs, "replicas")) > 0:
            return new_rs, _all(new_rs, old)  # old pods still terminating
        if new_rs is None:
            new_rs, old = await self._sync_revision(deployment, old, create=True, replicas=lambda _: desired)
        assert new_rs is not None
        new_rs = await self._scale(new_rs, desired)
        await self._cleanup_if_complete(deployment, new_rs, old)
        return new_rs, _all(new_rs, old)

    async def _rolling_update(
        self, deployment: Object, rss: list[Object]
    ) -> tuple[Object | None, list[Object]]:
        desired = int(deployment["spec"].get("replicas", 1))
        new_rs, old = await self._sync_revision(
            deployment, rss, create=True, replicas=lambda current: new_rs_replicas(deployment, current, 0)
        )
        assert new_rs is not None
        # Step 1: grow (or, after a scale-down, shrink) the new ReplicaSet.
        current = spec_replicas(new_rs)
        wanted = desired if current > desired else new_rs_replicas(deployment, _all(new_rs, old), current)
        if wanted != current:
            new_rs = await self._scale(new_rs, wanted)
            return new_rs, _all(new_rs, old)
        # Step 2: shrink old ReplicaSets as far as availability allows.
        old, scaled = await self._scale_down_old(deployment, new_rs, old)
        if not scaled:
            await self._cleanup_if_complete(deployment, new_rs, old)
        return new_rs, _all(new_rs, old)

    async def _scale_down_old(
        self, deployment: Object, new_rs: Object, old: list[Object]
    ) -> tuple[list[Object], bool]:
        """k8s' reconcileOldReplicaSets: first drop old pods that are not available anyway
        (they cost no availability), then available ones while at least
        replicas - maxUnavailable pods stay available."""
        if total(old, spec_replicas) == 0:
            return old, False
        desired = int(deployment["spec"].get("replicas", 1))
        _, max_unavailable = fenceposts(deployment)
        min_available = desired - max_unavailable
        all_pods = total(old, spec_replicas) + spec_replicas(new_rs)
        new_unavailable = spec_replicas(new_rs) - status_count(new_rs, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return old, False
        targets = {rs["metadata"]["name"]: spec_replicas(rs) for rs in old}
        ordered = oldest_first(old)
        cleaned = 0
        for rs in ordered:
            unhealthy = targets[rs["metadata"]["name"]] - status_count(rs, "availableReplicas")
            step = min(budget - cleaned, max(0, unhealthy))
            targets[rs["metadata"]["name"]] -= step
            cleaned += step
        available = total(old, lambda rs: status_count(rs, "availableReplicas"))
        available += status_count(new_rs, "availableReplicas")
        room = max(0, available - min_available)
        for rs in ordered:
            step = min(targets[rs["metadata"]["name"]], room)
            targets[rs["metadata"]["name"]] -= step
            room -= step
        result = [await self._scale(rs, targets[rs["metadata"]["name"]]) for rs in old]
        return result, any(a is not b for a, b in zip(result, old, strict=True))

    async def _cleanup_if_complete(self, deployment: Object, new_rs: Object, old: list[Object]) -> None:
        """Delete the oldest empty ReplicaSets beyond revisionHistoryLimit, once the rollout
        is done (an old ReplicaSet is what ``rollout undo`` goes back to)."""
        status = deployment_status(deployment, new_rs, _all(new_rs, old), self.clock())
        limit = deployment["spec"].get("revisionHistoryLimit")
        if limit is None or not is_complete(deployment, status):
            return
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        for rs in oldest_first(alive)[: max(0, len(alive) - limit)]:
            generation = rs["metadata"].get("generation", 1)
            observed = (rs.get("status") or {}).get("observedGeneration", 0)
            if spec_replicas(rs) or status_count(rs, "replicas") or observed < generation:
                continue  # its pods (or the ReplicaSet controller's view of them) are not gone yet
            with contextlib.suppress(NotFound):  # already gone: what we wanted
                await self.client.delete(REPLICA_SET, rs["metadata"]["name"], rs["metadata"].get("namespace"))

    # -- status ---------------------------------------------------------------------------

    async def _write_status(
        self, key: str, deployment: Object, new_rs: Object | None, rss: list[Object], event: str
    ) -> None:
        now = self.clock()
        status = deployment_status(deployment, new_rs, rss, now, event)
        if status != deployment.get("status"):
            deployment["status"] = status
            await self.client.update(DEPLOYMENT, deployment, subresource="status")
        # A stalled rollout sends no events: look again when its deadline would pass.
        delay = recheck_after(deployment, status, now)
        if delay is not None:
            self.queue.add_after(key, delay)


def _selector(deployment: Object) -> LabelSelector:
    return LabelSelector.from_object((deployment.get("spec") or {}).get("selector"))


def _all(new_rs: Object | None, old: list[Object]) -> list[Object]:
    return [*old, new_rs] if new_rs is not None else list(old)
