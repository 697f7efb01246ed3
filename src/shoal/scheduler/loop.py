"""The scheduler's control loop: watch nodes and pods, place pending pods in batches, bind.

Informer handlers only keep state: they feed every Node and Pod event to the core's
``Snapshot`` and sort the pods this scheduler owns (unbound, not finished, not being deleted,
not gated, ``schedulerName`` ours) into three places:

- **pending**: waiting for the next batch;
- **parked**: no node could take them; retried when the cluster changes in a way that can
  help (a node added, or changed in what filters read; a bound pod deleted or finished)
  and every ``retry_every`` seconds, never in a hot loop;
- **in flight**: placed and assumed into the snapshot, binding (or bound but not yet seen
  bound by the informer). Events for them are ignored: a stale unbound copy arriving after
  our binding must not schedule the pod again.

``run`` waits for a pending pod, then gathers more for a short debounce (pods created
together, one ReplicaSet scale-up, land in one batch and form one equivalence class), calls
``schedule_batch`` and hands the writes to a fixed pool of writer tasks. Writes are sharded by
pod key, so one pod's writes (an Unschedulable report, then a later binding) happen in
order; the next batch is placed while the writes of the previous one are under way, which
is safe because placed pods are already assumed.

A binding that fails with Conflict (bound by someone else, being deleted) or NotFound is
routine: the assumption is forgotten and the pod dropped; the informer's next event says
what became of it. After a successful binding the loop writes PodScheduled=True (see
``events``), so a pod that was Unschedulable before does not keep saying so.

Construct the loop before running the informers, like a controller: it adds its handlers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from shoal.api import Object
from shoal.api.errors import ApiError, Conflict, NotFound
from shoal.client import Client
from shoal.client.informer import Informers, object_key
from shoal.scheduler.batch import schedule_batch
from shoal.scheduler.chain import Chain
from shoal.scheduler.events import COMPONENT, NODE, POD, Reporter
from shoal.scheduler.podinfo import is_terminal
from shoal.scheduler.snapshot import Snapshot

log = logging.getLogger(__name__)

SCHEDULER_NAMES: Final = frozenset({COMPONENT, "shoal"})


@dataclass(frozen=True, slots=True)
class _Bind:
    key: str
    node: str
    version: object  # the pod's resourceVersion as placed, to tell a later change


@dataclass(frozen=True, slots=True)
class _Report:
    key: str
    message: str
    round: int  # the batch that parked the pod; a later one makes this report stale


_Job = _Bind | _Report


def _bound(pod: Object) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _holds_room(pod: Object | None) -> bool:
    return pod is not None and _bound(pod) and not is_terminal(pod)


def _placement_inputs(pod: Object) -> tuple[object, ...]:
    """What the filters read from a pod; a parked pod whose inputs change is retried at once
    (a status write, ours included, changes none of them)."""
    meta = pod["metadata"]
    return (pod.get("spec"), meta.get("labels"), meta.get("annotations"), meta.get("ownerReferences"))


def _node_inputs(node: Object) -> tuple[object, ...]:
    """What the filters read from a node. Heartbeat times and images change often and help
    no parked pod, so they do not trigger a retry."""
    meta, status = node["metadata"], node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (
        meta.get("labels"),
        meta.get("annotations"),
        node.get("spec"),
        status.get("allocatable"),
        status.get("capacity"),
        status.get("nodeInfo"),
        ready,
    )


class SchedulerLoop:
    """Binds the pods of the schedulers named in ``names`` (see the module's docstring).

    ``debounce``/``max_wait`` shape batches, ``retry_every`` is the period of the retry of
    parked pods, ``writers`` bounds the concurrent writes, ``event_refresh`` how often a
    repeated FailedScheduling Event's count is written.
    """

    def __init__(
        self,
        client: Client,
        informers: Informers,
        *,
        chain: Chain | None = None,
        names: frozenset[str] = SCHEDULER_NAMES,
        debounce: float = 0.01,
        max_wait: float = 0.1,
        retry_every: float = 5.0,
        writers: int = 16,
        event_refresh: float = 30.0,
    ) -> None:
        self.client = client
        self.chain = chain
        self.names = names
        self.debounce = debounce
        self.max_wait = max_wait
        self.retry_every = retry_every
        self.snapshot = Snapshot()
        self.reporter = Reporter(client, refresh=event_refresh)
        self.nodes = informers.of(NODE)
        self.pods = informers.of(POD)
        self._pending: dict[str, Object] = {}  # key -> latest object; insertion order kept
        self._parked: dict[str, tuple[Object, int]] = {}  # key -> (pod, round parked in)
        self._in_flight: set[str] = set()
        self._round = 0
        self._wake = asyncio.Event()  # set when pending grows
        # Bounded backlog: a full shard makes the batch loop wait, not memory grow.
        self._shards: list[asyncio.Queue[_Job]] = [asyncio.Queue(1024) for _ in range(writers)]
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)

    # -- informer handlers: state only, no I/O ---------------------------------------------

    def wants(self, pod: Object) -> bool:
        """A pod this scheduler must place: unbound, alive, ungated, ours."""
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        return (
            not spec.get("nodeName")
            and not is_terminal(pod)
            and not meta.get("deletionTimestamp")
            and not spec.get("schedulingGates")
            and (spec.get("schedulerName") or COMPONENT) in self.names
        )

    def _on_node(self, old: Object | None, new: Object | None) -> None:
        if new is None:
            assert old is not None
            self.snapshot.remove_node(old["metadata"]["name"])
            return
        self.snapshot.upsert_node(new)
        if old is None or _node_inputs(old) != _node_inputs(new):
            self._retry_parked()

    def _on_pod(self, old: Object | None, new: Object | None) -> None:
        pod = new or old
        assert pod is not None
        key = object_key(pod)
        if new is None:
            self.snapshot.remove_pod(key)
            self._drop(key)
            if _holds_room(old):
                self._retry_parked()
            return
        self.snapshot.upsert_pod(new)
        if not self.wants(new):  # bound (by us or anyone), finished, deleting, or not ours
            self._drop(key)
            if _holds_room(old) and not _holds_room(new):
                self._retry_parked()
            return
        if key in self._in_flight:
            return
        parked = self._parked.get(key)
        if parked is not None and old is not None and _placement_inputs(old) == _placement_inputs(new):
            self._parked[key] = (new, parked[1])
            return
        self._parked.pop(key, None)
        self._pending[key] = new
        self._wake.set()

    def _drop(self, key: str) -> None:
        self._pending.pop(key, None)
        self._parked.pop(key, None)
        self._in_flight.discard(key)
        self.reporter.forget(key)

    def _retry_parked(self) -> None:
        if not self._parked:
            return
        for key, (pod, _round) in self._parked.items():
            self._pending[key] = pod
        self._parked.clear()
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled. Waits for both informers' first list: placing pods
        before every bound pod is counted would overcommit nodes."""
        await self.nodes.synced.wait()
        await self.pods.synced.wait()
        async with asyncio.TaskGroup() as tasks:
            for i, shard in enumerate(self._shards):
                tasks.create_task(self._write(shard), name=f"scheduler writer {i}")
            tasks.create_task(self._retry_periodically(), name="scheduler retry")
            while True:
                batch = await self._next_batch()
                try:
                    await self.schedule(batch)
                except Exception:
                    # A bug in placement must not stop scheduling; the periodic retry
                    # gives these pods another look.
                    log.exception("scheduler: placing a batch of %d pods failed", len(batch))
                    self._park_all(batch)

    async def _next_batch(self) -> list[Object]:
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()
        # Gather: until no new pod arrives for ``debounce``, at most ``max_wait`` in all.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while (left := deadline - loop.time()) > 0:
            self._wake.clear()
            try:
                async with asyncio.timeout(min(self.debounce, left)):
                    await self._wake.wait()
            except TimeoutError:
                break
        batch = list(self._pending.values())
        self._pending.clear()
        return batch

    async def schedule(self, batch: list[Object]) -> None:
        """Place one batch and queue its writes."""
        self._round += 1
        placements = schedule_batch(batch, self.snapshot, self.chain)
        jobs: list[_Job] = []
        for pod, placement in zip(batch, placements, strict=True):
            key = placement.pod_key
            if placement.node is not None:
                self._in_flight.add(key)
                jobs.append(_Bind(key, placement.node, pod["metadata"].get("resourceVersion")))
            else:
                self._parked[key] = (pod, self._round)
                jobs.append(_Report(key, placement.message, self._round))
        for job in jobs:  # after the bookkeeping: a put may wait, and handlers run meanwhile
            await self._shards[hash(job.key) % len(self._shards)].put(job)

    def _park_all(self, batch: list[Object]) -> None:
        for pod in batch:
            key = object_key(pod)
            if key not in self._in_flight:
                self._parked[key] = (pod, self._round)

    async def _retry_periodically(self) -> None:
        # A timer, not a synchronisation: what no event announces (a filter with a clock,
        # an event the loop judged irrelevant) still gets another look now and then.
        while True:
            await asyncio.sleep(self.retry_every)
            self._retry_parked()

    async def _write(self, shard: asyncio.Queue[_Job]) -> None:
        while True:
            job = await shard.get()
            try:
                if isinstance(job, _Bind):
                    await self._bind(job)
                else:
                    await self._report(job)
            except ApiError as err:
                log.warning("scheduler: writing for pod %s failed: %s", job.key, err)
            except Exception:
                # One bad write must not stop the scheduler; the pod is retried later.
                log.exception("scheduler: writing for pod %s failed", job.key)
            finally:
                shard.task_done()

    async def _bind(self, job: _Bind) -> None:
        namespace, _, name = job.key.partition("/")
        try:
            await self.client.bind(POD, name, namespace, job.node)
        except (Conflict, NotFound) as err:
            log.debug("scheduler: binding %s to %s refused: %s", job.key, job.node, err)
            self._unassume(job)
            current = self.pods.get(job.key)
            # A change the informer showed while the pod was in flight was ignored: if the
            # pod still wants a node in a newer version, place it again.
            changed = current is not None and current["metadata"].get("resourceVersion") != job.version
            if current is not None and changed and self.wants(current):
                self._pending[job.key] = current
                self._wake.set()
            return
        except ApiError as err:
            # The store is unavailable or the like: park it for the periodic retry, so a
            # failing API is not hammered.
            log.warning("scheduler: binding %s to %s failed: %s", job.key, job.node, err)
            self._unassume(job)
            current = self.pods.get(job.key)
            if current is not None and self.wants(current):
                self._parked[job.key] = (current, self._round)
            return
        log.debug("scheduler: bound %s to %s", job.key, job.node)  # the binding set PodScheduled=True

    def _unassume(self, job: _Bind) -> None:
        self.snapshot.forget(job.key)
        self._in_flight.discard(job.key)

    async def _report(self, job: _Report) -> None:
        parked = self._parked.get(job.key)
        if parked is None or parked[1] != job.round:
            return  # retried, bound or gone since: this verdict is stale
        await self.reporter.unschedulable(self.pods.get(job.key) or parked[0], job.message)
