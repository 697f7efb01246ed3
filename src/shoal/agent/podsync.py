"""Pod sync: drives the containers of the Pods bound to this node through the runtime.

The loop has the controller shape (STYLE): an informer on ``spec.nodeName=<node>`` and the
exit of any container only *enqueue the pod's key*; workers take keys from a work queue (one
key is never synced twice at once) and call ``sync(key)``, which is level-triggered: it
compares the Pod with what the runtime holds and starts, restarts, stops or removes
containers, then writes the status if it changed.

What the agent remembers lives in the runtime, not in memory: each attempt is a container
whose identity (pod uid, container, attempt) the runtime stores, so the restart count is the
latest attempt, and a new agent rebuilds its index from ``runtime.list()`` (adoption: a
running container is watched again, never started twice; one whose pod is gone is stopped
and removed). Only the crash-loop back-off is kept in memory.

Probes (``prober.Prober`` by default) run in tasks of their own, started by ``track`` when
sync sees an attempt running and stopped by ``forget`` when it exits or is removed; a verdict
that changes enqueues the pod's key, and sync reads the verdicts (``probes.Probes``).

Before its first container, a pod gets its sandbox (``runtime.run_sandbox``: the network
namespace and published ports its containers share; the pod's IP) and each container its mounts
(``volumes.Volumes``); both go when the pod goes. An image the runtime cannot get leaves the
container waiting in ErrImagePull, then ImagePullBackOff, retried with the restart back-off.

Events, as the kubelet's (``client.events.EventRecorder``, component ``shoal-agent``, host the
node): Started, Killing (deletion, a terminal phase, a liveness or startup kill), Failed (a
start error, an image that cannot be pulled, or a configuration that cannot be built),
FailedCreatePodSandBox, BackOff, Unhealthy (each failed probe result, from the prober).
Recording only queues: a write that fails is logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shoal.agent.config import AgentConfig
from shoal.agent.env import ConfigError, EnvResolver
from shoal.agent.node import now_rfc3339
from shoal.agent.prober import Prober
from shoal.agent.probes import Probes
from shoal.agent.restart import REASON_CRASH_LOOP, Backoff, should_restart
from shoal.agent.runtimes import (
    REASON_ERR_IMAGE_NEVER_PULL,
    ContainerExists,
    ContainerIdentity,
    ContainerNotFound,
    ContainerRuntimeError,
    ContainerState,
    ContainerStatus,
    ImageError,
    InvalidState,
    PortMapping,
    Runtime,
    SandboxSpec,
    StartFailed,
)
from shoal.agent.status import TERMINAL_PHASES, ContainerView, changed, pod_status
from shoal.agent.volumes import Volumes
from shoal.api import Object
from shoal.api.errors import NotFound
from shoal.api.kinds.pod import POD
from shoal.client._interface import Client
from shoal.client.events import NORMAL, WARNING, EventRecorder
from shoal.client.informer import Informer, object_key, split_key
from shoal.client.workqueue import WorkQueue, work

log = logging.getLogger(__name__)

REASON_CONFIG_ERROR = "CreateContainerConfigError"
REASON_IMAGE_BACKOFF = "ImagePullBackOff"
REASON_CREATING = "ContainerCreating"
DEFAULT_GRACE = 30  # seconds, for a pod whose spec is no longer known (deleted while we were away)
UNSUPPORTED_INIT = "init containers are not supported by the shoal agent yet"
CONFIG_RETRY = 1.0  # seconds before trying again to read a missing ConfigMap or Secret
COMPONENT = "shoal-agent"  # the Events' source.component


@dataclass(slots=True)
class _PodContainers:
    """The runtime's containers of one pod uid: container name -> attempt -> container id."""

    key: str
    grace: float = DEFAULT_GRACE
    attempts: dict[str, dict[int, str]] = field(default_factory=dict)
    pod: Object | None = None  # as last synced (for the Events of its deletion); None if adopted
    pod_ip: str | None = None  # the sandbox's address; None: the node's (host networking)


def _grace(pod: Object) -> float:
    """The pod's terminationGracePeriodSeconds, shortened by a positive deletion grace."""
    written = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    grace = float(DEFAULT_GRACE if written is None else written)
    deletion = pod["metadata"].get("deletionGracePeriodSeconds")
    if deletion:  # the server writes 0 when finalizers hold the object, which is no request
        grace = min(grace, float(deletion))
    return max(grace, 0.0)


def sandbox_spec(pod: Object) -> SandboxSpec:
    """The pod-wide part of a pod: its name, hostname, network mode and hostPorts."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ports = tuple(
        PortMapping(
            port["containerPort"],
            port["hostPort"],
            port.get("protocol") or "TCP",
            port.get("hostIP") or "",
        )
        for container in spec.get("containers") or ()
        for port in container.get("ports") or ()
        if port.get("hostPort")
    )
    return SandboxSpec(
        namespace=meta.get("namespace") or "default",
        pod_name=meta["name"],
        pod_uid=meta["uid"],
        hostname=spec.get("hostname") or meta["name"],
        ports=ports,
        host_network=bool(spec.get("hostNetwork")),
    )


def _monotonic_of(rfc3339: str | None) -> float:
    """A wall-clock time from a container record, on the monotonic clock back-off uses."""
    if not rfc3339:
        return time.monotonic()
    ago = time.time() - datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    return time.monotonic() - max(ago, 0.0)


class PodSync:
    def __init__(
        self, client: Client, runtime: Runtime, config: AgentConfig, *, probes: Probes | None = None
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.volumes = Volumes(client, config.volume_dir) if config.volume_dir is not None else None
        self.informer = Informer(client, POD, field_selector=f"spec.nodeName={config.node_name}")
        self.queue = WorkQueue()
        self.events = EventRecorder(client, COMPONENT, host=config.node_name, refresh=config.event_refresh)
        # Probes connect to the pod IP; in host networking (no pod_ip of its own) to loopback.
        self.probes: Probes = probes or Prober(
            runtime,
            self.queue.add,
            default_host=config.pod_ip or "127.0.0.1",
            on_failure=self._probe_failed,
        )
        self.env = EnvResolver(client, config.effective_pod_ip, config.internal_ip)
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        self.ready = asyncio.Event()  # set once adopted containers and the pod list are in hand
        self._pods: dict[str, _PodContainers] = {}  # by pod uid
        self._exited_at: dict[str, float] = {}  # container id -> monotonic time its exit was seen
        # the last failed pull of a (pod uid, "<container>/image"), and what the engine said
        self._pull_failed_at: dict[tuple[str, str], float] = {}
        self._pull_waiting: dict[tuple[str, str], tuple[str, str]] = {}
        self._waiters: dict[str, asyncio.Task[None]] = {}
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        """Adopt, list and watch the node's pods, and sync them until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self.events.run(), name="event recorder")
            tasks.create_task(self.probes.run(), name="prober")
            await self._adopt()
            self.informer.add_handler(self._on_event)
            tasks.create_task(self.informer.run(), name="pod informer")
            # Workers wait for the first list: before it, every adopted container would look
            # orphaned and be killed.
            await self.informer.synced.wait()
            for record in self._pods.values():
                self.queue.add(record.key)
            for i in range(self.config.workers):
                # A failing sync (the manager may be away) is retried with a growing delay
                # while the pods keep running.
                tasks.create_task(work(self.queue, self.sync, "syncing pod"), name=f"pod sync worker {i}")
            self.ready.set()
            try:
                await asyncio.Future()  # until cancelled
            finally:
                # Workers also stop at ShutDown: a cancellation that lands while the queue's
                # wait_for completes is swallowed on Python 3.11, and a worker would go on.
                self.queue.shut_down()

    def _on_event(self, old: Object | None, new: Object | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(object_key(obj))

    async def _adopt(self) -> None:
        for info in await self.runtime.list():
            identity = info.identity
            record = self._pods.setdefault(
                identity.pod_uid, _PodContainers(f"{identity.namespace}/{identity.pod_name}")
            )
            record.attempts.setdefault(identity.container_name, {})[identity.attempt] = info.status.id
            if info.status.state is ContainerState.RUNNING:
                self._watch(info.status.id, record.key)
        for sandbox in await self.runtime.list_sandboxes():
            # A sandbox without containers (a crash between the two): removed if its pod is gone.
            self._pods.setdefault(sandbox.pod_uid, _PodContainers(f"{sandbox.namespace}/{sandbox.pod_name}"))
        log.info("adopted %d pod(s) from the %s runtime", len(self._pods), self.runtime.name)

    # --- sync ---

    async def sync(self, key: str) -> None:
        """Make the runtime match the Pod named ``key`` (gone, deleting, running, finished)."""
        pod = self.informer.get(key)
        uid = pod["metadata"]["uid"] if pod is not None else None
        for stale in [u for u, r in self._pods.items() if r.key == key and u != uid]:
            gone = self._pods[stale]
            if gone.pod is not None:
                await self._killing(gone.pod, gone)
            await self._kill_pod(stale)  # the pod is gone, or was replaced by one of the same name
        if pod is None or uid is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            record = self._pods.get(uid)
            if record is not None:  # else stopped and removed by an earlier sync
                record.grace = _grace(pod)
                await self._killing(pod, record)
                await self._stop_all(record)
                await self._report(pod, await self._views(pod, record, act=False))
                await self._kill_pod(uid)
            with contextlib.suppress(NotFound):
                # Kubernetes' kubelet confirms with a delete of grace 0; here it is a no-op
                # until the server learns graceful deletion, and finalizers still hold it.
                namespace, name = split_key(key)
                await self.client.delete(POD, name, namespace)
            return
        record = self._pods.setdefault(uid, _PodContainers(key))
        record.grace = _grace(pod)
        record.pod = pod
        terminal = (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
        if terminal:
            await self._killing(pod, record)
            await self._stop_all(record)  # e.g. marked Failed while its node was unreachable
        if pod["spec"].get("initContainers") and not terminal:
            # Refused rather than skipped: running the app without its init steps is worse.
            views = [
                ContainerView(c["name"], c.get("image", ""), waiting=(REASON_CONFIG_ERROR, UNSUPPORTED_INIT))
                for c in pod["spec"].get("containers") or []
            ]
            await self._report(pod, views, initialized=False)
            return
        if not terminal and not await self._sandbox(pod, record):
            views = [
                ContainerView(c["name"], c.get("image", ""), waiting=(REASON_CREATING, ""))
                for c in pod["spec"].get("containers") or []
            ]
            await self._report(pod, views)
            return
        await self._report(pod, await self._views(pod, record, act=not terminal))

    async def _sandbox(self, pod: Object, record: _PodContainers) -> bool:
        """Make sure the pod's sandbox runs; False (retried later) when it cannot be made."""
        try:
            sandbox = await self.runtime.run_sandbox(sandbox_spec(pod))
        except ContainerRuntimeError as err:
            key = (pod["metadata"]["uid"], "")
            self.backoff.restarted(key)
            self.queue.add_after(record.key, self.backoff.delay(key))
            self.events.record(pod, WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err}")
            return False
        record.pod_ip = sandbox.ip
        return True

    async def _views(self, pod: Object, record: _PodContainers, *, act: bool) -> list[ContainerView]:
        return [await self._sync_container(pod, record, c, act) for c in pod["spec"].get("containers") or []]

    async def _sync_container(
        self, pod: Object, record: _PodContainers, container: dict[str, Any], act: bool
    ) -> ContainerView:
        """Start, restart or stop one container as needed, and say how it is."""
        name = container["name"]
        attempts = record.attempts.setdefault(name, {})
        current = await self._status(attempts[max(attempts)]) if attempts else None
        attempt = max(attempts) if attempts else 0
        waiting: tuple[str, str] | None = None
        if act and current is not None and current.state is ContainerState.RUNNING:
            failure = self.probes.liveness_failure(pod, name, current.id)
            if failure is not None:
                log.info("container %s of pod %s failed liveness: %s", name, record.key, failure)
                kind = failure.split(" ", 1)[0].lower()
                self._event(
                    pod, name, NORMAL, "Killing", f"Container {name} failed {kind} probe, will be restarted"
                )
                current = await self.runtime.stop(current.id, record.grace)
        if act and current is None:
            current, waiting = await self._start(pod, record, container, 0)
        elif act and current is not None and current.state is ContainerState.CREATED:
            current = await self._start_created(pod, name, current.id, record.key)
        elif (
            act
            and current is not None
            and should_restart(pod["spec"].get("restartPolicy", "Always"), current)
        ):
            restarted, waiting = await self._restart(pod, record, container, current, attempt)
            if restarted is not None:
                current, attempt = restarted, attempt + 1
        previous_id = attempts.get(attempt - 1)
        previous = await self._status(previous_id) if previous_id is not None else None
        ready = started = False
        if current is not None and current.state is ContainerState.RUNNING:
            # starts this attempt's probes once
            self.probes.track(pod, container, current, host=record.pod_ip)
            started = self.probes.started(pod, name, current.id)
            ready = started and self.probes.ready(pod, name, current.id)
        view = ContainerView(
            name=name,
            image=container.get("image", ""),
            restart_count=attempt,
            current=current,
            previous=previous,
            waiting=waiting,
            ready=ready,
            started=started,
        )
        return view

    async def _restart(
        self,
        pod: Object,
        record: _PodContainers,
        container: dict[str, Any],
        ended: ContainerStatus,
        attempt: int,
    ) -> tuple[ContainerStatus | None, tuple[str, str] | None]:
        """Start the attempt after ``attempt`` once the back-off allows; until then, wait
        (CrashLoopBackOff) with the key requeued for the moment it does."""
        meta, name = pod["metadata"], container["name"]
        backoff_key = (meta["uid"], name)
        finished = self._exited_at.get(ended.id) or _monotonic_of(ended.finished_at)
        left = self.backoff.remaining(backoff_key, finished)
        if left > 0:
            self.queue.add_after(record.key, left)
            delay = self.backoff.delay(backoff_key)
            self._event(
                pod,
                name,
                WARNING,
                "BackOff",
                f"Back-off restarting failed container {name} in pod {meta['name']}",
            )
            return None, (
                REASON_CRASH_LOOP,
                f"back-off {delay:g}s restarting failed container={name} "
                f"pod={meta['name']}_{meta.get('namespace', 'default')}({meta['uid']})",
            )
        self.backoff.restarted(backoff_key)
        return await self._start(pod, record, container, attempt + 1)

    async def _start(
        self, pod: Object, record: _PodContainers, container: dict[str, Any], attempt: int
    ) -> tuple[ContainerStatus | None, tuple[str, str] | None]:
        """Create and start attempt ``attempt``; a configuration that cannot be built leaves
        the container waiting (and the key requeued) instead."""
        meta = pod["metadata"]
        name = container["name"]
        try:
            spec = await self.env.spec(pod, container, pod_ip=record.pod_ip)
            if self.volumes is not None:
                spec = replace(spec, mounts=await self.volumes.mounts(pod, container))
        except ConfigError as err:
            self.queue.add_after(record.key, CONFIG_RETRY)
            self._event(pod, name, WARNING, "Failed", str(err))
            return None, (REASON_CONFIG_ERROR, str(err))
        identity = ContainerIdentity(
            meta.get("namespace", "default"), meta["name"], meta["uid"], name, attempt
        )
        pull_key = (meta["uid"], f"{name}/image")
        if self.backoff.remaining(pull_key, self._pull_failed_at.get(pull_key, 0.0)) > 0:
            reason, message = self._pull_waiting.get(pull_key, (REASON_IMAGE_BACKOFF, ""))
            # Between pulls Kubernetes says ImagePullBackOff; a Never policy never pulls, and
            # keeps saying why.
            return None, (reason if reason == REASON_ERR_IMAGE_NEVER_PULL else REASON_IMAGE_BACKOFF, message)
        try:
            cid = await self.runtime.create(identity, spec)
        except ContainerExists as err:
            # Created by us before a crash between create() and our index: it is the same one.
            assert err.container_id is not None
            cid = err.container_id
        except ImageError as err:
            # ErrImagePull now; ImagePullBackOff until the back-off lets the next pull try.
            self._pull_failed_at[pull_key] = time.monotonic()
            self.backoff.restarted(pull_key)
            self._pull_waiting[pull_key] = (err.reason, err.message)
            self.queue.add_after(record.key, self.backoff.delay(pull_key))
            self._event(pod, name, WARNING, "Failed", f'Failed to pull image "{err.image}": {err.message}')
            return None, (err.reason, err.message)
        self._pull_failed_at.pop(pull_key, None)
        self._pull_waiting.pop(pull_key, None)
        attempts = record.attempts.setdefault(name, {})
        attempts[attempt] = cid
        status = await self._start_created(pod, name, cid, record.key)
        # Keep the attempt before (lastState, ``logs --previous``); older ones are forgotten.
        for old in [a for a in attempts if a < attempt - 1]:
            await self._remove(attempts.pop(old))
        return status, None

    async def _start_created(self, pod: Object, name: str, cid: str, key: str) -> ContainerStatus:
        try:
            await self.runtime.start(cid)
        except StartFailed as err:
            log.info("container %s of pod %s could not start: %s", cid, key, err.message)
            self._event(pod, name, WARNING, "Failed", err.message)
        except InvalidState:
            pass  # started before the agent's index knew it (a crash in between): adopt it
        else:
            self._event(pod, name, NORMAL, "Started", f"Started container {name}")
        self._watch(cid, key)
        return await self.runtime.status(cid)

    async def _status(self, cid: str) -> ContainerStatus | None:
        try:
            return await self.runtime.status(cid)
        except ContainerNotFound:
            return None

    async def _report(self, pod: Object, views: list[ContainerView], *, initialized: bool = True) -> None:
        record = self._pods.get(pod["metadata"]["uid"])
        status = pod_status(
            pod,
            views,
            runtime=self.runtime.name,
            host_ip=self.config.internal_ip,
            pod_ip=(record.pod_ip if record else None) or self.config.effective_pod_ip,
            now=now_rfc3339(),
            initialized=initialized,
        )
        if not changed(pod.get("status") or {}, status):
            return
        meta = pod["metadata"]
        # A pod deleted meanwhile is NotFound: the informer will tell, and sync cleans up.
        with contextlib.suppress(NotFound):
            await self.client.patch(
                POD, meta["name"], {"status": status}, meta.get("namespace"), subresource="status"
            )

    # --- events ---

    def _event(self, pod: Object, container: str, type_: str, reason: str, message: str) -> None:
        """Record an Event about one container of the pod (queued: never blocks, never raises)."""
        self.events.record(pod, type_, reason, message, field_path=f"spec.containers{{{container}}}")

    def _probe_failed(self, key: str, container: str, message: str) -> None:
        pod = self.informer.get(key)
        if pod is not None:
            self._event(pod, container, WARNING, "Unhealthy", message)

    async def _killing(self, pod: Object, record: _PodContainers) -> None:
        """Killing Events for the containers of the pod whose latest attempt still runs."""
        for name, attempts in record.attempts.items():
            if not attempts:
                continue
            current = await self._status(attempts[max(attempts)])
            if current is not None and current.state is ContainerState.RUNNING:
                self._event(pod, name, NORMAL, "Killing", f"Stopping container {name}")

    # --- container lifecycle ---

    def _watch(self, cid: str, key: str) -> None:
        """Enqueue the pod when this container exits (one owned task per running container)."""
        if cid in self._waiters or self._tasks is None:
            return
        waiter = self._wait(cid, key)
        try:
            self._waiters[cid] = self._tasks.create_task(waiter, name=f"wait {cid}")
        except RuntimeError:  # the agent is stopping; the next one adopts the container
            waiter.close()

    async def _wait(self, cid: str, key: str) -> None:
        try:
            await self.runtime.wait(cid)
            self._exited_at[cid] = time.monotonic()
            self.queue.add(key)
        except ContainerRuntimeError as err:
            log.debug("no longer waiting for %s: %s", cid, err)
        finally:
            self._waiters.pop(cid, None)
            self.probes.forget(cid)

    async def _stop_all(self, record: _PodContainers) -> None:
        """Stop every running container of the pod at once, each with the pod's grace period."""
        async with asyncio.TaskGroup() as tasks:
            for attempts in record.attempts.values():
                for cid in attempts.values():
                    tasks.create_task(self._stop(cid, record.grace))

    async def _stop(self, cid: str, grace: float) -> None:
        with contextlib.suppress(ContainerNotFound):
            await self.runtime.stop(cid, grace)

    async def _kill_pod(self, uid: str) -> None:
        """Stop and remove every container of a pod uid, and forget it."""
        record = self._pods.get(uid)
        if record is None:
            return
        await self._stop_all(record)
        for attempts in record.attempts.values():
            for cid in list(attempts.values()):
                await self._remove(cid)
        del self._pods[uid]
        self.backoff.forget_pod(uid)
        self.events.forget(uid)
        with contextlib.suppress(ContainerRuntimeError, ValueError):
            await self.runtime.remove_sandbox(uid)
        if self.volumes is not None:
            await self.volumes.cleanup(uid)
        for key in [k for k in self._pull_failed_at if k[0] == uid]:
            self._pull_failed_at.pop(key, None)
            self._pull_waiting.pop(key, None)
        log.info("removed the containers of pod %s (uid %s)", record.key, uid)

    async def _remove(self, cid: str) -> None:
        if (waiter := self._waiters.pop(cid, None)) is not None:
            waiter.cancel()
        self.probes.forget(cid)
        self._exited_at.pop(cid, None)
        with contextlib.suppress(ContainerNotFound):
            await self.runtime.remove(cid)
