"""The manager process: API server, control plane (when leader) and, for ``shoal init``, a
local agent so that a one-machine cluster runs workloads."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

from shoal.agent.config import AgentConfig
from shoal.agent.run import run_agent
from shoal.client.local import LocalClient
from shoal.manager.controlplane import run_as_leader
from shoal.security import tokens as join_tokens
from shoal.server.run import api_server


async def run_manager(
    data_dir: Path,
    listen: str = "127.0.0.1:6443",
    store_url: str = "",
    *,
    agent: AgentConfig | None = None,
    on_ready: Callable[[str, str], None] | None = None,
    insecure: bool = False,
) -> None:
    """Serve and manage until SIGINT/SIGTERM. ``on_ready(url, worker_token)`` is called once
    the API listens."""
    async with api_server(data_dir, listen, store_url, insecure=insecure) as (resources, server):
        local = LocalClient(resources)
        token = (await join_tokens.tokens(local))["worker"]
        async with asyncio.TaskGroup() as tasks:
            parts = [
                tasks.create_task(
                    run_as_leader(local, f"{socket.gethostname()}-{os.getpid()}"), name="control plane"
                )
            ]
            if agent is not None:
                parts.append(
                    tasks.create_task(run_agent(server.url, data_dir / "agent", agent), name="local agent")
                )
            if on_ready is not None:
                on_ready(server.url, token)
            await server.stopped()
            for part in parts:
                part.cancel()
