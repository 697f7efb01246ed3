"""The stages after the API, assembled into leader-elected components.

Each component (the controllers, the scheduler, the store compactor) campaigns for its own
Lease in ``kube-system``, as Kubernetes' controller-manager and scheduler do, and runs only
in the manager that holds it: renewed every 2 s, taken over 6 s after its holder stopped.
Within a component every stage is built from the same in-process client and the same shared
informers; none holds a reference to another. They cooperate only through the objects in
the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from shoal.client._interface import Client
from shoal.client.informer import Informers
from shoal.client.leaderelection import LeaderElector
from shoal.controllers._controller import Controller
from shoal.controllers.daemonset import DaemonSetController
from shoal.controllers.deployment import DeploymentController
from shoal.controllers.garbagecollector import GarbageCollector
from shoal.controllers.job import JobController
from shoal.controllers.nodelifecycle import NodeLifecycleController
from shoal.controllers.replicaset import ReplicaSetController
from shoal.manager.registry import COMPONENT_LEASES
from shoal.scheduler.loop import SchedulerLoop
from shoal.store import Store
from shoal.store.compactor import run_compactor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One control loop of the leader: a name for logs and task names, and how to run it."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


def controller(loop: Controller, workers: int = 1) -> Stage:
    return Stage(loop.name, functools.partial(loop.run, workers))


def build_controllers(client: Client, informers: Informers) -> list[Stage]:
    """Every controller, in data-flow order. Adding a stage means adding a line here."""
    return [
        controller(DeploymentController(client, informers), workers=2),
        controller(ReplicaSetController(client, informers), workers=4),
        controller(DaemonSetController(client, informers), workers=2),
        controller(JobController(client, informers), workers=2),
        controller(GarbageCollector(client, informers), workers=2),
        controller(NodeLifecycleController(client, informers)),
    ]


def build_scheduler(client: Client, informers: Informers) -> list[Stage]:
    return [Stage("scheduler", SchedulerLoop(client, informers).run)]


def build(client: Client, informers: Informers) -> list[Stage]:
    """Every stage in one component (a single process that needs no election per stage)."""
    return build_controllers(client, informers) + build_scheduler(client, informers)


async def run_stages(client: Client, builder: Callable[[Client, Informers], list[Stage]] = build) -> None:
    """Run the informers and every stage until cancelled (the leader's work)."""
    informers = Informers(client)
    stages = builder(client, informers)  # the stages ask for informers while being built
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(informers.run(), name="informers")
        await informers.wait_synced()
        for stage in stages:
            tasks.create_task(stage.run(), name=stage.name)
        log.info("control plane running: %s", ", ".join(s.name for s in stages))


@dataclass(frozen=True)
class Component:
    """A leader-elected part of the control plane: the Lease it campaigns for, what it runs."""

    name: str
    lease: str
    run: Callable[[Client], Coroutine[Any, Any, None]]


def components(store: Store | None = None) -> list[Component]:
    """The components every manager campaigns for; the compactor only with a ``store``."""
    parts = [
        Component(
            "controllers",
            COMPONENT_LEASES["controllers"],
            lambda client: run_stages(client, build_controllers),
        ),
        Component(
            "scheduler", COMPONENT_LEASES["scheduler"], lambda client: run_stages(client, build_scheduler)
        ),
    ]
    if store is not None:
        parts.append(
            Component("compactor", COMPONENT_LEASES["compactor"], lambda _client: run_compactor(store))
        )
    return parts


async def run_as_leader(
    client: Client,
    identity: str | None = None,
    *,
    store: Store | None = None,
    lease_duration: float = 6.0,
    renew_interval: float = 2.0,
) -> None:
    """Campaign for every component's Lease; run each component while holding its Lease."""
    candidate = identity or socket.gethostname()
    async with asyncio.TaskGroup() as tasks:
        for part in components(store):
            elector = LeaderElector(
                client,
                part.lease,
                candidate,
                lease_duration=lease_duration,
                renew_interval=renew_interval,
            )
            tasks.create_task(elector.run(functools.partial(part.run, client)), name=f"{part.name} election")
