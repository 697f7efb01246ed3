"""The stages after the API, assembled: shared informers, the controllers and the
scheduler, all in one TaskGroup, in the leader only.

Each stage is built from the same in-process client and the same shared informers; none
holds a reference to another. They cooperate only through the objects in the store.
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
from shoal.scheduler.loop import SchedulerLoop

log = logging.getLogger(__name__)

LEASE_NAME = "shoal-controllers"


@dataclass(frozen=True)
class Stage:
    """One control loop of the leader: a name for logs and task names, and how to run it."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


def controller(loop: Controller, workers: int = 1) -> Stage:
    return Stage(loop.name, functools.partial(loop.run, workers))


def build(client: Client, informers: Informers) -> list[Stage]:
    """Every controller, in data-flow order. Adding a stage means adding a line here."""
    return [
        controller(DeploymentController(client, informers), workers=2),
        controller(ReplicaSetController(client, informers), workers=4),
        controller(DaemonSetController(client, informers), workers=2),
        controller(JobController(client, informers), workers=2),
        controller(GarbageCollector(client, informers), workers=2),
        controller(NodeLifecycleController(client, informers)),
        Stage("scheduler", SchedulerLoop(client, informers).run),
    ]


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


async def run_as_leader(client: Client, identity: str | None = None) -> None:
    """Campaign for the controllers' lease; run the stages while holding it."""
    elector = LeaderElector(client, LEASE_NAME, identity or socket.gethostname())
    await elector.run(lambda: run_stages(client))
