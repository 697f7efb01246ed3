"""The manager process: API server, control plane (when leader) and, for ``shoal init``, a
local agent so that a one-machine cluster runs workloads."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from shoal.agent.config import AgentConfig
from shoal.agent.run import run_agent
from shoal.client import kubeconfig
from shoal.client.local import LocalClient
from shoal.manager.controlplane import run_as_leader
from shoal.security import tokens as join_tokens
from shoal.server.resources import Resources
from shoal.server.run import ConfigError, listening, parse_listen
from shoal.store import open_store


async def run_manager(
    data_dir: Path,
    listen: str = "127.0.0.1:6443",
    store_url: str = "",
    *,
    agent: AgentConfig | None = None,
    on_ready: Callable[[str, str], None] | None = None,
) -> None:
    """Serve and manage until SIGINT/SIGTERM. ``on_ready(url, worker_token)`` is called once
    the API listens."""
    host, port = parse_listen(listen)
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before serving)
    try:
        store = await open_store(store_url or f"sqlite:///{data_dir / 'state.db'}")
    except ValueError as err:
        raise ConfigError(f"--store: {err}") from None
    try:
        resources = Resources(store)
        await resources.bootstrap()
        async with listening(resources, host, port) as server:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, server.stop)
            kubeconfig.write(data_dir / "kubeconfig", server.url)
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
                        tasks.create_task(
                            run_agent(server.url, data_dir / "agent", agent), name="local agent"
                        )
                    )
                if on_ready is not None:
                    on_ready(server.url, token)
                await server.stopped()
                for part in parts:
                    part.cancel()
    finally:
        await store.close()
