"""An Event recorder for components that report what happens to objects (the agent's pod
lifecycle: Started, Killing, Failed, BackOff, Unhealthy), in the shape of client-go's.

``record`` never blocks and never raises: it puts the Event on a bounded queue (dropped, with
a log line, when the queue is full) that ``run()`` writes, so a slow or absent manager cannot
hold up the caller. Repeats of the same (object uid, fieldPath, type, reason, message) do not
create an Event each: the first creates ``<object>.<16 hex digits>``, later ones raise
``count`` and ``lastTimestamp``, written at most every ``refresh`` seconds per Event (a crash
loop costs no write storm); a count not yet written is flushed once ``refresh`` has passed.
Write errors are logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import AlreadyExists, NotFound
from shoal.client._interface import MERGE_PATCH, Client

log = logging.getLogger(__name__)

NORMAL: Final = "Normal"
WARNING: Final = "Warning"
MAX_MESSAGE: Final = 1024  # the Event kind's limit on message
MAX_PENDING: Final = 1000  # queued Events beyond this are dropped
_NAME_SUFFIX: Final = 17  # "." and 16 hex digits


def _event_kind() -> Kind:
    found = REGISTRY.by_resource("", "v1", "events")
    assert found is not None
    return found


EVENT: Final = _event_kind()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(object_name: str) -> str:
    """Kubernetes' naming: the object's name and the time in hex, unique per Event."""
    return f"{object_name[: 253 - _NAME_SUFFIX]}.{time.time_ns():016x}"


SeriesKey = tuple[str, str, str, str, str, str]  # namespace, uid, fieldPath, type, reason, message


@dataclass(slots=True)
class _Record:
    involved: Object
    type: str
    reason: str
    message: str
    at: str


@dataclass(slots=True)
class _Series:
    name: str
    namespace: str
    first: str
    last: str
    count: int  # occurrences seen; the stored Event may show fewer until the next write
    written: int  # the count the stored Event shows
    written_at: float
    record: _Record


def involved_object(obj: Object, field_path: str = "") -> Object:
    meta = obj["metadata"]
    ref: Object = {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", ""),
        "name": meta["name"],
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    """Args:
    client: writes the Events (create, merge patch).
    component: ``source.component`` and ``reportingComponent``.
    host: ``source.host`` and ``reportingInstance`` (the node's name for an agent).
    refresh: seconds between two writes of one Event's count.
    clock: a monotonic clock.
    """

    def __init__(
        self,
        client: Client,
        component: str,
        *,
        host: str = "",
        refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.refresh = refresh
        self.clock = clock
        # Records, and uids to forget once the Events queued before are written.
        self._queue: asyncio.Queue[_Record | str] = asyncio.Queue(MAX_PENDING)
        self._series: dict[SeriesKey, _Series] = {}

    def record(self, obj: Object, type_: str, reason: str, message: str, *, field_path: str = "") -> None:
        """Queue an Event about ``obj`` (``field_path`` names a part, e.g. a container)."""
        try:
            ref = involved_object(obj, field_path)
            self._queue.put_nowait(_Record(ref, type_, reason, message[:MAX_MESSAGE], now_rfc3339()))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s: %s", type_, reason, message)
        except Exception:  # never break the caller
            log.exception("recording event %s", reason)

    def forget(self, uid: str) -> None:
        """The object is gone: once the Events queued so far are written, its Events are no
        longer counted (nothing is deleted; a repeat would start a new Event)."""
        try:
            self._queue.put_nowait(uid)
        except asyncio.QueueFull:
            for key in [k for k in self._series if k[1] == uid]:
                del self._series[key]

    async def _forget(self, uid: str) -> None:
        """Write the counts still held back by ``refresh``, then drop the uid's series."""
        for key in [k for k in self._series if k[1] == uid]:
            series = self._series.pop(key)
            if series.count > series.written:
                await self._update(series)

    async def run(self) -> None:
        """Write queued Events, and counts held back by ``refresh``, until cancelled."""
        while True:
            record: _Record | str | None = None
            timeout = self._next_flush()
            if timeout is None:
                record = await self._queue.get()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        record = await self._queue.get()
            try:
                if isinstance(record, str):
                    await self._forget(record)
                elif record is not None:
                    await self.write(record)
                await self._flush()
            except Exception:  # best effort: the next occurrence tries again
                log.exception("writing events")

    def _next_flush(self) -> float | None:
        pending = [s.written_at + self.refresh for s in self._series.values() if s.count > s.written]
        if not pending:
            return None
        return max(0.0, min(pending) - self.clock())

    async def _flush(self) -> None:
        now = self.clock()
        for series in list(self._series.values()):
            if series.count > series.written and now - series.written_at >= self.refresh:
                await self._update(series)

    async def write(self, record: _Record) -> None:
        """Create the Event, or count one more occurrence of it (written if ``refresh`` allows)."""
        ref = record.involved
        key: SeriesKey = (
            str(ref.get("namespace", "")),
            str(ref.get("uid", "")),
            str(ref.get("fieldPath", "")),
            record.type,
            record.reason,
            record.message,
        )
        series = self._series.get(key)
        if series is None:
            self._series[key] = await self._create(record, 1, record.at)
            return
        series.count += 1
        series.last = record.at
        if self.clock() - series.written_at >= self.refresh:
            await self._update(series)

    async def _update(self, series: _Series) -> None:
        patch = {"count": series.count, "lastTimestamp": series.last}
        try:
            await self.client.patch(EVENT, series.name, patch, series.namespace, patch_type=MERGE_PATCH)
        except NotFound:  # deleted (or expired): start again, keeping the count
            fresh = await self._create(series.record, series.count, series.first, last=series.last)
            series.name = fresh.name
        except Exception as err:
            log.warning("updating event %s: %s", series.name, err)
            series.written_at = self.clock()  # try again after refresh, not at once
            return
        series.written, series.written_at = series.count, self.clock()

    async def _create(self, record: _Record, count: int, first: str, *, last: str | None = None) -> _Series:
        ref = record.involved
        namespace = str(ref.get("namespace") or "default")
        name = event_name(str(ref["name"]))
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "type": record.type,
            "reason": record.reason,
            "message": record.message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": last or record.at,
        }
        try:
            await self.client.create(EVENT, event, namespace)
        except AlreadyExists:
            log.debug("event %s already exists", name)
        except Exception as err:
            log.warning("creating event %s %s for %s: %s", record.type, record.reason, ref.get("name"), err)
            # Not written: keep the series so repeats count, and try a create at the next write.
            return _Series(name, namespace, first, last or record.at, count, 0, self.clock(), record)
        return _Series(name, namespace, first, last or record.at, count, count, self.clock(), record)
