"""The stages after the API, assembled: shared informers, the controllers and the
scheduler, all in one TaskGroup, in the leader only.

Each stage is built from the same in-process client and the same shared informers; none
holds a reference to another. They cooperate only through the objects in the store.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from shoal.client._interface import Client
from shoal.client.informer import Informers
from shoal.client.leaderelection import LeaderElector
from shoal.controllers._controller import Controller
from shoal.controllers.deployment import DeploymentController
from shoal.controllers.garbagecollector import GarbageCollector
from shoal.controllers.job import JobController
from shoal.controllers.nodelifecycle import NodeLifecycleController
from shoal.controllers.replicaset import ReplicaSetController

log = logging.getLogger(__name__)

LEASE_NAME = "shoal-controllers"


@dataclass(frozen=True)
class Stage:
    """One control loop and how many workers it runs."""

    controller: Controller
    workers: int = 1


def build(client: Client, informers: Informers) -> list[Stage]:
    """Every controller, in data-flow order. Adding a stage means adding a line here."""
    return [
        Stage(DeploymentController(client, informers), workers=2),
        Stage(ReplicaSetController(client, informers), workers=4),
        Stage(JobController(client, informers), workers=2),
        Stage(GarbageCollector(client, informers), workers=2),
        Stage(NodeLifecycleController(client, informers)),
    ]


async def run_stages(client: Client, builder: Callable[[Client, Informers], list[Stage]] = build) -> None:
    """Run the informers and every stage until cancelled (the leader's work)."""
    informers = Informers(client)
    stages = builder(client, informers)  # the stages ask for informers while being built
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(informers.run(), name="informers")
        await informers.wait_synced()
        for stage in stages:
            tasks.create_task(stage.controller.run(stage.workers), name=stage.controller.name)
        log.info("control plane running: %s", ", ".join(s.controller.name for s in stages))


async def run_as_leader(client: Client, identity: str | None = None) -> None:
    """Campaign for the controllers' lease; run the stages while holding it."""
    elector = LeaderElector(client, LEASE_NAME, identity or socket.gethostname())
    await elector.run(lambda: run_stages(client))
