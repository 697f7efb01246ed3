"""Leader election on a Lease, as Kubernetes' controller-manager and scheduler do it.

Candidates race to hold one Lease (in ``kube-system`` by default). The holder renews it
every ``renew_interval``; the others take it over once it has not changed for
``lease_duration`` *as they observed it*: each candidate times the lease record with its
own monotonic clock, so clocks that disagree between machines do not matter. A leader that
cannot renew within the duration stops leading (its work is cancelled) before anyone else
can take over; a leader that stops cleanly releases the lease so a successor starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from shoal.api import REGISTRY, Object
from shoal.api.errors import AlreadyExists, ApiError, Conflict, NotFound
from shoal.client._interface import Client

log = logging.getLogger(__name__)

LEASE = REGISTRY.by_resource("coordination.k8s.io", "v1", "leases")


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: Client,
        name: str,
        identity: str,
        *,
        namespace: str = "kube-system",
        lease_duration: float = 6.0,
        renew_interval: float = 2.0,
        retry_interval: float = 0.5,
    ) -> None:
        if renew_interval >= lease_duration:
            raise ValueError("renew_interval must be shorter than lease_duration")
        # A Lease records whole seconds: the duration is rounded up, never to zero.
        self.lease_seconds = max(1, math.ceil(lease_duration))
        self.client = client
        self.name = name
        self.identity = identity
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self.leading = asyncio.Event()  # set while this candidate holds the lease
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time when that record was first seen

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign for the lease; while holding it, run ``lead()`` (cancelled on loss).
        Returns when ``lead`` returns; releases the lease then."""
        while True:
            await self._acquire()
            log.info("%s: %s is the leader", self.name, self.identity)
            self.leading.set()
            try:
                async with asyncio.TaskGroup() as tasks:
                    work = tasks.create_task(lead(), name=f"{self.name} leader work")
                    keeping = tasks.create_task(self._keep(), name=f"{self.name} lease renewal")
                    done, _ = await asyncio.wait({work, keeping}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (work, keeping):
                        task.cancel()
                if work in done and not work.cancelled():
                    await self._release()
                    return
                log.warning("%s: %s lost the lease; standing by", self.name, self.identity)
            finally:
                self.leading.clear()

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                return
            await asyncio.sleep(self.retry_interval)  # the lease is remote: nothing local to wait on

    async def _keep(self) -> None:
        """Renew until a renewal fails for a whole lease duration: then leadership is lost."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_interval)
            if await self._try_acquire_or_renew():
                last_renewed = time.monotonic()
            elif time.monotonic() - last_renewed >= self.lease_duration - self.renew_interval:
                return

    async def _try_acquire_or_renew(self) -> bool:
        assert LEASE is not None
        now = micro_time()
        try:
            lease = await self.client.get(LEASE, self.name, self.namespace)
        except NotFound:
            return await self._create(now)
        except ApiError as err:
            log.warning("%s: cannot read the lease: %s", self.name, err)
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        expired = time.monotonic() - self._observed_at >= float(spec.get("leaseDurationSeconds") or 0)
        if holder and holder != self.identity and not expired:
            return False
        new_spec = {
            **spec,
            "holderIdentity": self.identity,
            "renewTime": now,
            "leaseDurationSeconds": self.lease_seconds,
        }
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        try:
            updated = await self.client.update(LEASE, {**lease, "spec": new_spec})
        except (Conflict, NotFound):
            return False  # someone else wrote first: look again next round
        except ApiError as err:
            log.warning("%s: cannot renew the lease: %s", self.name, err)
            return False
        self._note(updated)
        return True

    async def _create(self, now: str) -> bool:
        assert LEASE is not None
        body: Object = {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "acquireTime": now,
                "renewTime": now,
                "leaseDurationSeconds": self.lease_seconds,
                "leaseTransitions": 0,
            },
        }
        try:
            self._note(await self.client.create(LEASE, body))
        except (AlreadyExists, Conflict):
            return False
        except ApiError as err:
            log.warning("%s: cannot create the lease: %s", self.name, err)
            return False
        return True

    def _note(self, lease: Object) -> None:
        spec = lease.get("spec") or {}
        self._observed = (spec.get("holderIdentity") or "", str(spec.get("renewTime") or ""))
        self._observed_at = time.monotonic()

    async def _release(self) -> None:
        """Give the lease up so that a successor need not wait for it to expire."""
        assert LEASE is not None
        # A courtesy, bounded: a store without quorum must not hold up a stopping manager.
        with contextlib.suppress(ApiError, TimeoutError):
            async with asyncio.timeout(self.renew_interval):
                lease = await self.client.get(LEASE, self.name, self.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") == self.identity:
                    await self.client.update(
                        LEASE, {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}}
                    )
