"""Running an agent against a manager over HTTP: what ``shoal join`` and ``shoal init``'s
local agent do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx

from shoal.agent.agent import Agent
from shoal.agent.config import AgentConfig
from shoal.agent.runtimes import Runtime
from shoal.agent.runtimes.exec import ExecRuntime
from shoal.api.errors import ApiError, ServiceUnavailable
from shoal.client.http import HttpClient


async def check_join(server: str, token: str, node_name: str) -> None:
    """Ask the manager whether ``token`` admits this node; raises the manager's refusal
    (a wrong or rotated token is a 401 that says so)."""
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{server.rstrip('/')}/shoal/v1/join", json={"token": token, "nodeName": node_name}
            )
    except httpx.HTTPError as err:
        raise ServiceUnavailable(f"cannot reach the manager at {server}: {err}") from None
    if response.status_code >= 400:
        try:
            status = response.json()
        except ValueError:
            status = {"message": response.text[:200]}
        raise ApiError.from_status(status if isinstance(status, dict) else {}, response.status_code)


async def run_agent(server: str, state_dir: Path, config: AgentConfig) -> None:
    """Run this node's agent until cancelled; its containers outlive it (the next agent on
    the same ``state_dir`` adopts them)."""
    client = HttpClient(server)
    runtime = make_runtime(config, state_dir)
    if config.runtime != "exec" and config.volume_dir is None:
        config = dataclasses.replace(config, volume_dir=state_dir / "volumes")
    try:
        await Agent(client, runtime, config).run()
    finally:
        await client.close()


def make_runtime(config: AgentConfig, state_dir: Path) -> Runtime:
    """The runtime ``config.runtime`` names (the docker client loads only when asked for)."""
    if config.runtime == "docker":
        from shoal.agent.runtimes.docker import DockerRuntime

        return DockerRuntime(config.docker_host)
    return ExecRuntime(state_dir)
