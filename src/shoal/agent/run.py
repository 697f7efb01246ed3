"""Running an agent against a manager over HTTP: what ``shoal join`` and ``shoal init``'s
local agent do."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from shoal.agent import managers
from shoal.agent.agent import Agent
from shoal.agent.certificates import credentials_of, keep_renewed
from shoal.agent.config import AgentConfig
from shoal.agent.runtimes import Runtime
from shoal.agent.runtimes.exec import ExecRuntime
from shoal.client.http import HttpClient
from shoal.security.join import Joined, NodeCredentials, join_cluster


async def check_join(server: str, token: str, node_name: str, state_dir: Path) -> Joined:
    """Join the cluster at ``server`` with ``token``: the manager checks the token's secret and
    signs this node's certificate (its key is made here and never sent); this side refuses a
    manager whose CA does not match the token's digest. The key, certificate and CA are kept
    in ``state_dir/pki``. Raises the refusal (a wrong or rotated token is a 401 that says so)."""
    return await join_cluster(server, token, node_name, state_dir)


async def run_agent(server: str, state_dir: Path, config: AgentConfig) -> None:
    """Run this node's agent until cancelled; its containers outlive it (the next agent on
    the same ``state_dir`` adopts them)."""
    node = NodeCredentials.under(state_dir)
    # The certificate the join (or the manager, for its own agent) made, kept renewed.
    credentials = credentials_of(node) if node.exists() else None
    client = HttpClient(server, credentials=credentials, fallbacks=managers.saved(state_dir))
    runtime = make_runtime(config, state_dir)
    if config.runtime != "exec" and config.volume_dir is None:
        config = dataclasses.replace(config, volume_dir=state_dir / "volumes")
    try:
        async with asyncio.TaskGroup() as tasks:
            agent = Agent(client, runtime, config, credentials=node if credentials is not None else None)
            tasks.create_task(agent.run(), name="agent")
            if credentials is not None:
                tasks.create_task(keep_renewed(client, node, config.node_name), name="certificate renewal")
                tasks.create_task(managers.follow(client, state_dir), name="manager list")
    finally:
        await client.close()


def make_runtime(config: AgentConfig, state_dir: Path) -> Runtime:
    """The runtime ``config.runtime`` names (the docker client loads only when asked for)."""
    if config.runtime == "docker":
        from shoal.agent.runtimes.docker import DockerRuntime

        return DockerRuntime(config.docker_host)
    return ExecRuntime(state_dir)
