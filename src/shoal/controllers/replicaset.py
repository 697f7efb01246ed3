"""The ReplicaSet controller: keep ``spec.replicas`` active pods matching the template.

Pods it creates carry a controller reference to the ReplicaSet; pods that match its
selector and have no controller are adopted. Creations go in slow-start batches (1, 2, 4, …)
so that one error (a quota, a bad template) costs one request, not hundreds. Deletions
prefer pods that are not yet placed, then not yet ready, then the youngest. Status last.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists
from shoal.client import MERGE_PATCH, Client
from shoal.client.informer import Informers
from shoal.controllers._owners import (
    is_active,
    is_ready,
    pod_from_template,
)
from shoal.controllers._podowner import PodOwner

log = logging.getLogger(__name__)

REPLICA_SET = REGISTRY.by_resource("apps", "v1", "replicasets")
POD = REGISTRY.by_resource("", "v1", "pods")
BURST = 500  # the most pods one reconcile creates or deletes


class ReplicaSetController(PodOwner):
    name = "replicaset"

    def __init__(self, client: Client, informers: Informers) -> None:
        assert REPLICA_SET is not None and POD is not None
        super().__init__(client, informers, REPLICA_SET)

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        rs = self.owners.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = await self.claim_pods(rs)
        active = [p for p in pods if is_active(p)]
        if self.expectations.satisfied(key):
            wanted = int(rs["spec"].get("replicas", 1))
            if len(active) < wanted:
                await self._create(key, rs, wanted - len(active))
            elif len(active) > wanted:
                await self._delete(key, pick_victims(active, len(active) - wanted))
        await self._write_status(rs, active)

    async def _create(self, key: str, rs: Object, missing: int) -> None:
        assert REPLICA_SET is not None and POD is not None
        todo = min(missing, BURST)
        self.expectations.expect(key, adds=todo)
        batch = 1
        while todo > 0:
            size = min(batch, todo)
            pod = pod_from_template(rs["spec"]["template"], REPLICA_SET, rs)
            results = await asyncio.gather(
                *(self.client.create(POD, copy.deepcopy(pod)) for _ in range(size)), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            todo -= size
            if failures:
                # No watch event will come for what was not created, nor for the batches skipped.
                for _ in range(len(failures) + todo):
                    self.expectations.observed_add(key)
                error = failures[0]
                if isinstance(error, AlreadyExists):
                    continue
                raise error
            batch *= 2

    async def _delete(self, key: str, victims: list[Object]) -> None:
        assert POD is not None
        self.expectations.expect(key, deletes=len(victims))
        await self.delete_pods(key, victims)

    async def _write_status(self, rs: Object, active: list[Object]) -> None:
        assert REPLICA_SET is not None
        labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_ready(p)]
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),  # minReadySeconds is not yet tracked
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        current = rs.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return
        patch = {"status": status}
        await self.client.patch(
            REPLICA_SET,
            rs["metadata"]["name"],
            patch,
            rs["metadata"].get("namespace"),
            patch_type=MERGE_PATCH,
            subresource="status",
        )


def pick_victims(active: list[Object], count: int) -> list[Object]:
    """Which pods go first when scaling down: unplaced, then pending, then not ready, then
    the youngest, as Kubernetes ranks them (cheap to lose first)."""

    def rank(pod: Object) -> tuple[int, int, int, str]:
        placed = 1 if (pod.get("spec") or {}).get("nodeName") else 0
        running = 1 if (pod.get("status") or {}).get("phase") == "Running" else 0
        ready = 1 if is_ready(pod) else 0
        created = pod["metadata"].get("creationTimestamp", "")
        return (placed, running, ready, _invert(created))

    return sorted(active, key=rank)[:count]


def _invert(timestamp: str) -> str:
    """Sort newest first with an ascending sort."""
    return "".join(chr(0x10FFFF - ord(c)) for c in timestamp)
