"""The manager process: API server, control plane components (each while it holds its
Lease) and, unless told otherwise, a local agent so that a one-machine cluster runs
workloads. Several managers may share one store (etcd): each serves the API, announces
itself (``manager.registry``) and campaigns for every component."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from shoal.agent.config import AgentConfig
from shoal.agent.run import run_agent
from shoal.client.local import LocalClient
from shoal.manager import registry
from shoal.manager.controlplane import run_as_leader
from shoal.security import join as node_join
from shoal.security import keys, pki
from shoal.security import tokens as join_tokens
from shoal.server.run import api_server


async def run_manager(
    data_dir: Path,
    listen: str = "127.0.0.1:6443",
    store_url: str = "",
    *,
    agent: AgentConfig | None = None,
    on_ready: Callable[[str, str], None] | None = None,
    autolock: bool = False,
    node_cert_lifetime: dt.timedelta = pki.DEFAULT_LIFETIME,
    name: str = "",
    lease_duration: float = 6.0,
) -> None:
    """Serve and manage until SIGINT/SIGTERM. ``on_ready(url, worker_token)`` is called once
    the API listens (with autolock after a restart: once ``shoal unlock`` has opened the
    keyring, since the join tokens are a Secret). ``name`` is the manager's (its node's name
    by default); ``lease_duration`` how long the components' Leases outlive a silent holder."""
    name = name or (agent.node_name if agent is not None else socket.gethostname())
    async with api_server(
        data_dir,
        listen,
        store_url,
        autolock=autolock,
        node_cert_lifetime=node_cert_lifetime,
    ) as (
        resources,
        server,
    ):
        local = LocalClient(resources)
        if agent is not None:  # the local agent's node certificate, for the TLS step
            await node_join.issue_local_node_credentials(resources, agent.node_name, data_dir / "agent")
        async with asyncio.TaskGroup() as tasks:
            identity = registry.election_identity(name, secrets.token_hex(4))
            parts = [
                tasks.create_task(registry.announce(local, name, server.url), name="manager lease"),
                tasks.create_task(
                    run_as_leader(
                        local,
                        identity,
                        store=resources.store,
                        lease_duration=lease_duration,
                        renew_interval=lease_duration / 3,
                    ),
                    name="control plane",
                ),
            ]
            if agent is not None:
                parts.append(
                    tasks.create_task(run_agent(server.url, data_dir / "agent", agent), name="local agent")
                )
            if on_ready is not None and await keys.until_unlocked(resources.store, server.stopped()):
                on_ready(server.url, (await join_tokens.tokens(local))["worker"])
            await server.stopped()
            for part in parts:
                part.cancel()
