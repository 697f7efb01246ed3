"""What the scheduler tells people: the PodScheduled condition and FailedScheduling Events.

A pod no node can take gets ``PodScheduled=False`` (reason ``Unschedulable``, the placement's
message) and a Warning Event. ``PodScheduled=True`` is the binding's: the server sets it in
the same write that assigns the node, which also clears an earlier ``Unschedulable``.

Conditions are written with a strategic merge patch: ``status.conditions`` merges by
``type``, so the write replaces only the PodScheduled entry and cannot lose a condition the
agent wrote in between, which a merge patch of the whole list read from a cache could.

Retries of one pod with the same message do not create an Event each: one Event per pod and
message, whose ``count`` and ``lastTimestamp`` grow. The count is kept here and written at
most every ``refresh`` seconds, so a pod retried on every cluster change costs no write each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import AlreadyExists, NotFound
from shoal.client import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Client
from shoal.client.events import MAX_MESSAGE, event_name, now_rfc3339

log = logging.getLogger(__name__)

COMPONENT: Final = "default-scheduler"  # kube-scheduler's name, which kubectl users know


def _kind(plural: str) -> Kind:
    found = REGISTRY.by_resource("", "v1", plural)
    assert found is not None, plural
    return found


POD: Final = _kind("pods")
NODE: Final = _kind("nodes")
EVENT: Final = _kind("events")


def scheduled_condition(pod: Object) -> Object | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            return dict(cond)
    return None


def _condition_patch(condition: Object) -> Object:
    return {"status": {"conditions": [{"type": "PodScheduled", **condition}]}}


@dataclass(slots=True)
class _Series:
    """The Event last written for one pod: same uid and message means the same Event."""

    uid: str
    message: str
    name: str
    first: str
    count: int  # failures seen; the stored Event may show fewer until the next refresh
    written_at: float


class Reporter:
    """Writes conditions and Events for the loop; every method is safe to call again."""

    def __init__(
        self, client: Client, *, refresh: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.refresh = refresh
        self.clock = clock
        self._series: dict[str, _Series] = {}  # pod key -> its FailedScheduling Event

    def forget(self, key: str) -> None:
        """The pod is bound or gone: its next failure, if any, starts a new Event."""
        self._series.pop(key, None)

    async def unschedulable(self, pod: Object, message: str) -> None:
        """PodScheduled=False with ``message`` unless the pod already says so, then the Event."""
        meta = pod["metadata"]
        current = scheduled_condition(pod) or {}
        unchanged = (current.get("status"), current.get("reason"), current.get("message")) == (
            "False",
            "Unschedulable",
            message,
        )
        if not unchanged:
            condition: Object = {"status": "False", "reason": "Unschedulable", "message": message}
            if current.get("status") != "False":  # the transition time marks a change of status
                condition["lastTransitionTime"] = now_rfc3339()
            try:
                await self._patch_status(meta["namespace"], meta["name"], _condition_patch(condition))
            except NotFound:
                return
        await self._event(pod, message)

    async def _patch_status(self, namespace: str, name: str, patch: Object) -> None:
        await self.client.patch(
            POD, name, patch, namespace, patch_type=STRATEGIC_MERGE_PATCH, subresource="status"
        )

    async def _event(self, pod: Object, message: str) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        uid = meta.get("uid") or ""
        series = self._series.get(key)
        if series is None or series.uid != uid or series.message != message:
            self._series[key] = await self._create(pod, message, 1, now_rfc3339())
            return
        series.count += 1
        if self.clock() - series.written_at < self.refresh:
            return
        now = now_rfc3339()
        patch = {"count": series.count, "lastTimestamp": now}
        try:
            await self.client.patch(EVENT, series.name, patch, meta["namespace"], patch_type=MERGE_PATCH)
        except NotFound:  # someone deleted it (or a TTL did): start again, keeping the count
            self._series[key] = await self._create(pod, message, series.count, series.first)
            return
        series.written_at = self.clock()

    async def _create(self, pod: Object, message: str, count: int, first: str) -> _Series:
        meta = pod["metadata"]
        name = event_name(meta["name"])  # kube-scheduler's naming, unique per Event
        now = now_rfc3339()
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": "Warning",
            "reason": "FailedScheduling",
            "message": message[:MAX_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": now,
        }
        try:
            await self.client.create(EVENT, event, meta["namespace"])
        except AlreadyExists:  # two failures in the same nanosecond: one Event says it
            log.debug("event %s already exists", name)
        return _Series(meta.get("uid") or "", message, name, first, count, self.clock())
