"""The node agent: registration and heartbeat (``node``) beside pod sync (``podsync``), in one
task group, so that cancelling ``run()`` stops both and a crash of either stops the agent.

A small HTTP endpoint (``nodeserver``) serves the containers' logs and exec sessions to the
manager; the Node reports its port.

Neither half waits for the other: pods are adopted and kept running even while the Node
cannot be registered (the manager is away), and a registered Node stays Ready only as long as
the process heartbeats. ``shoal join`` builds one with an ``HttpClient``; tests with a
``LocalClient``.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.agent.config import AgentConfig
from shoal.agent.node import NodeRegistration
from shoal.agent.nodeserver import NodeServer
from shoal.agent.podsync import PodSync
from shoal.agent.probes import Probes
from shoal.agent.runtimes import Runtime
from shoal.agent.stats import StatsCollector
from shoal.client._interface import Client
from shoal.security.join import NodeCredentials

log = logging.getLogger(__name__)


class Agent:
    """Args:
    client: the manager's API, with this node's credentials.
    runtime: runs the containers; the agent closes it when it stops (containers keep
        running, to be adopted by the next agent on the same state).
    config: node name, addresses, intervals.
    credentials: the node certificate: its endpoint (logs, exec, stats) serves HTTPS with it
        and admits only the manager; None: plain HTTP (tests without a cluster CA).
    probes: readiness/liveness/startup verdicts; by default pod sync's own ``Prober``, which
        runs the pods' probes (``probes.NoProbes``: every running container is ready).
    """

    def __init__(
        self,
        client: Client,
        runtime: Runtime,
        config: AgentConfig,
        *,
        probes: Probes | None = None,
        credentials: NodeCredentials | None = None,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.node = NodeRegistration(client, config, runtime.name)
        self.pods = PodSync(client, runtime, config, probes=probes)
        self.stats = StatsCollector(runtime, config.stats_interval)
        self.logs = NodeServer(
            runtime, config.internal_ip, stats=self.stats, node_name=config.node_name, credentials=credentials
        )

    async def run(self) -> None:
        """Run until cancelled; the runtime is closed on the way out, never its containers."""
        log.info("agent of node %s starting (runtime %s)", self.config.node_name, self.runtime.name)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.logs.run(), name="node endpoint")
                await self.logs.listening.wait()  # the Node reports its port
                self.node.kubelet_port = self.logs.port
                tasks.create_task(self.node.run(), name="node registration")
                tasks.create_task(self.pods.run(), name="pod sync")
                tasks.create_task(self.stats.run(), name="stats collector")
        finally:
            await self.runtime.close()
            log.info("agent of node %s stopped", self.config.node_name)
