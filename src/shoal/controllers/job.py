"""The Job controller: run pods until enough of them succeed, or give up.

NonIndexed semantics, as Kubernetes' job controller has them:

- it keeps ``min(parallelism, completions - succeeded)`` pods active; without ``completions``
  (a work queue) it keeps ``parallelism`` active until one succeeds, then starts no more and
  waits for the rest to finish;
- succeeded and failed are counted from the phases of its pods, which it never deletes once
  finished (their logs stay readable), so no tracking finalizer is needed;
- more failures than ``backoffLimit`` (or, with restartPolicy OnFailure, that many container
  restarts), or ``activeDeadlineSeconds`` passed since ``status.startTime``, fail the Job:
  its active pods are deleted and the Failed condition is set;
- ``suspend`` deletes the active pods and creates none; resuming restarts the deadline clock.

A finished Job (Complete or Failed) is left alone. Job status has no observedGeneration.
Not yet: Indexed mode, podFailurePolicy, successPolicy, the back-off delay between
replacements, adoption of orphans (the generated selector names the Job's uid, so only
``manualSelector`` Jobs could have any).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists
from shoal.api.kinds.columns import parse_time
from shoal.client import MERGE_PATCH, Client
from shoal.client.informer import Informers, object_key
from shoal.controllers._owners import is_active, is_controlled_by, is_ready, pod_from_template
from shoal.controllers._podowner import PodOwner
from shoal.controllers.replicaset import pick_victims

__all__ = ["JobController"]

log = logging.getLogger(__name__)

JOB = REGISTRY.by_resource("batch", "v1", "jobs")
POD = REGISTRY.by_resource("", "v1", "pods")
BURST = 500  # the most pods one reconcile creates

BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def _now() -> datetime:
    return datetime.now(UTC)


def _format(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobController(PodOwner):
    adopts_orphans = False  # a Job selects by its own uid: no orphan matches

    name = "job"

    def __init__(self, client: Client, informers: Informers, *, clock: Callable[[], datetime] = _now) -> None:
        assert JOB is not None and POD is not None
        super().__init__(client, informers, JOB)
        self.clock = clock  # a seam for tests: startTime, completionTime, deadlines

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        job = self.owners.get(key)
        if job is None or job["metadata"].get("deletionTimestamp") or is_finished(job):
            return  # the garbage collector removes a deleted Job's pods; a finished Job is history
        job = copy.deepcopy(job)  # the cache's copy is shared: never change it in place
        spec, status = job["spec"], job.setdefault("status", {})
        now = self.clock()
        pods = [
            p
            for p in self.pods.list()
            if p["metadata"].get("namespace") == job["metadata"].get("namespace") and is_controlled_by(p, job)
        ]
        active = [p for p in pods if is_active(p)]
        # Pods are counted from the cache; a finished pod someone else deleted must not make
        # the counters go back, so they never fall below what status already recorded.
        succeeded = max(_count(pods, "Succeeded"), int(status.get("succeeded") or 0))
        failed = max(_count(pods, "Failed"), int(status.get("failed") or 0))
        suspended = spec.get("suspend") is True
        conditions: list[dict[str, Any]] = list(status.get("conditions") or [])

        if suspended:
            conditions = set_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now)
        elif _condition_true(conditions, "Suspended"):
            # Resuming restarts the clock: time spent suspended does not count to the deadline.
            conditions = set_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now)
            status["startTime"] = _format(now)
        elif not status.get("startTime"):
            status["startTime"] = _format(now)

        failure = None
        if failed > int(spec.get("backoffLimit", 6)) or _past_restart_limit(job, active):
            failure = BACKOFF_LIMIT_EXCEEDED
        elif not suspended and (left := _deadline_left(job, now)) is not None and left <= 0:
            failure = DEADLINE_EXCEEDED

        active_count = len(active)
        if failure is not None:
            await self._delete(key, active)
            active_count = 0
            conditions = set_condition(conditions, "Failed", "True", *failure, now)
        elif self.expectations.satisfied(key):
            want = wanted_active(spec, succeeded, active_count)
            if active_count < want:
                active_count += await self._create(key, job, want - active_count)
            elif active_count > want:  # parallelism lowered, suspended, or completions reached
                await self._delete(key, pick_victims(active, active_count - want))
                active_count = want
        if failure is None and is_complete(spec, succeeded, active_count):
            conditions = set_condition(conditions, "Complete", "True", *COMPLETIONS_REACHED, now)
            status["completionTime"] = _format(now)

        status.update(
            active=active_count,
            succeeded=succeeded,
            failed=failed,
            ready=sum(1 for p in active if is_ready(p)) if failure is None else 0,
        )
        if conditions:  # an empty list would be a difference the server may not keep
            status["conditions"] = conditions
        await self._write_status(job, status)
        if failure is None and not suspended and (left := _deadline_left(job, now)) is not None:
            self.queue.add_after(key, left)  # nothing else would wake us when the deadline passes

    async def _create(self, key: str, job: Object, missing: int) -> int:
        """Create ``missing`` pods in slow-start batches (1, 2, 4, …); returns how many were made."""
        assert JOB is not None and POD is not None
        todo, created, batch = min(missing, BURST), 0, 1
        self.expectations.expect(key, adds=todo)
        pod = pod_from_template(job["spec"]["template"], JOB, job)
        while todo > 0:
            size = min(batch, todo)
            results = await asyncio.gather(
                *(self.client.create(POD, copy.deepcopy(pod)) for _ in range(size)), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            created += size - len(failures)
            todo -= size
            if failures:
                # No watch event will come for what was not created, nor for the batches skipped.
                for _ in range(len(failures) + todo):
                    self.expectations.observed_add(key)
                if isinstance(failures[0], AlreadyExists):
                    return created
                raise failures[0]
            batch *= 2
        return created

    async def _delete(self, key: str, victims: list[Object]) -> None:
        assert POD is not None
        if not victims:
            return
        self.expectations.expect(key, deletes=len(victims))
        await self.delete_pods(key, victims)

    async def _write_status(self, job: Object, status: dict[str, Any]) -> None:
        assert JOB is not None
        current = (self.owners.get(object_key(job)) or {}).get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return  # a no-op reconcile writes nothing, so it wakes nobody (no event loop)
        await self.client.patch(
            JOB,
            job["metadata"]["name"],
            {"status": status},
            job["metadata"].get("namespace"),
            patch_type=MERGE_PATCH,
            subresource="status",
        )


def wanted_active(spec: dict[str, Any], succeeded: int, active: int) -> int:
    """How many pods should be running now (Kubernetes' manageJob)."""
    if spec.get("suspend") is True:
        return 0
    parallelism = int(spec.get("parallelism", 1))
    completions = spec.get("completions")
    if completions is None:
        # A work queue: once one pod succeeded the work is done; let the others finish.
        return active if succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


def is_complete(spec: dict[str, Any], succeeded: int, active: int) -> bool:
    completions = spec.get("completions")
    if completions is None:
        return succeeded > 0 and active == 0
    return succeeded >= int(completions) and active == 0


def is_finished(job: Object) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return _condition_true(conditions, "Complete") or _condition_true(conditions, "Failed")


def set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, now: datetime
) -> list[dict[str, Any]]:
    """The conditions with ``kind`` set; its timestamps move only when its status changes, so
    reconciling again leaves the object as it was."""
    old = next((c for c in conditions if c.get("type") == kind), None)
    if old is not None and old.get("status") == status and old.get("reason") == reason:
        return conditions
    stamp = _format(now)
    new = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }
    return [c for c in conditions if c.get("type") != kind] + [new]


def _condition_true(conditions: list[dict[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _count(pods: list[Object], phase: str) -> int:
    """Pods that ended in ``phase``. A pod that fails while being deleted (suspended, failed
    Job, parallelism lowered, a user's delete) was stopped, not broken: no failure."""
    return sum(
        1
        for p in pods
        if (p.get("status") or {}).get("phase") == phase
        and not (phase == "Failed" and p["metadata"].get("deletionTimestamp"))
    )


def _deadline_left(job: Object, now: datetime) -> float | None:
    """Seconds until ``activeDeadlineSeconds`` runs out, or None when there is no deadline."""
    deadline = job["spec"].get("activeDeadlineSeconds")
    start = (job.get("status") or {}).get("startTime")
    if deadline is None or not start:
        return None
    return float(deadline) - (now - parse_time(start)).total_seconds()


def _past_restart_limit(job: Object, active: list[Object]) -> bool:
    """With restartPolicy OnFailure a failing container restarts in its pod and the pod never
    fails, so Kubernetes counts the restarts of the active pods against backoffLimit instead."""
    if (job["spec"]["template"].get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(
        int(c.get("restartCount") or 0)
        for p in active
        if (p.get("status") or {}).get("phase") in ("Pending", "Running")
        for c in [
            *((p.get("status") or {}).get("initContainerStatuses") or []),
            *((p.get("status") or {}).get("containerStatuses") or []),
        ]
    )
    limit = int(job["spec"].get("backoffLimit", 6))
    return restarts > 0 if limit == 0 else restarts >= limit
