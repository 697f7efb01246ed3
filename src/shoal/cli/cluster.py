"""``shoal init`` and ``shoal join``: start a manager (with a local agent), or add a node."""

from __future__ import annotations

import logging
import socket
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shoal.cli.context import Interrupted, run
from shoal.cli.server import LISTEN, STORE
from shoal.client.kubeconfig import DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from shoal.agent.config import AgentConfig

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default="$SHOAL_DATA_DIR or ~/.shoal",
    help="Where the state, the kubeconfig and the agent's records are kept.",
)
NAME = click.option(
    "--name", default=socket.gethostname, show_default="the host name", help="This node's name."
)
LABELS = click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="A node label (repeatable)."
)
MAX_PODS = click.option(
    "--max-pods",
    type=click.IntRange(1, 10_000),
    default=110,
    show_default=True,
    help="The most pods this node runs (its pods capacity).",
)


MANAGER_ROLE_LABEL = "node-role.kubernetes.io/manager"


def parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r}: expected KEY=VALUE", param_hint="--label")
        out[key] = value
    return out


def _agent_config(name: str, labels: tuple[str, ...], max_pods: int) -> AgentConfig:
    from shoal.agent.config import AgentConfig  # the agent stack loads only for these commands

    return AgentConfig(node_name=name, labels=parse_labels(labels), max_pods=max_pods)


@click.command()
@DATA_DIR
@LISTEN
@STORE
@NAME
@LABELS
@MAX_PODS
@click.option("--no-agent", is_flag=True, help="Manage only: run no workloads on this machine.")
def init(
    data_dir: Path,
    listen: str,
    store_url: str,
    name: str,
    labels: tuple[str, ...],
    max_pods: int,
    no_agent: bool,
) -> None:
    """Start a cluster: a manager, and an agent so that this machine runs workloads."""
    from shoal.manager.run import run_manager

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.expanduser().absolute()
    # The manager's own node says so: Swarm constraints (node.role==manager|worker) and
    # `shoal node ls` read this label.
    agent = None if no_agent else _agent_config(name, (f"{MANAGER_ROLE_LABEL}=", *labels), max_pods)

    def on_ready(url: str, token: str) -> None:
        click.echo(f"shoal manager ready at {url}; kubeconfig: {data_dir / 'kubeconfig'}")
        click.echo(f"to add a worker, run on it:\n    shoal join {url} --token {token}")

    with suppress(Interrupted):
        run(run_manager(data_dir, listen, store_url, agent=agent, on_ready=on_ready))


@click.command()
@click.argument("manager_url")
@click.option("--token", required=True, help="The worker join token (`shoal token show` on a manager).")
@NAME
@LABELS
@MAX_PODS
@DATA_DIR
def join(
    manager_url: str, token: str, name: str, labels: tuple[str, ...], max_pods: int, data_dir: Path
) -> None:
    """Join this machine to a cluster as a worker, and run its agent in the foreground."""
    from shoal.agent.run import check_join, run_agent

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _agent_config(name, labels, max_pods)
    state_dir = data_dir.expanduser().absolute() / f"agent-{config.node_name}"

    async def body() -> None:
        await check_join(manager_url, token, config.node_name)
        click.echo(f"node {config.node_name} joined the cluster at {manager_url}")
        await run_agent(manager_url, state_dir, config)

    with suppress(Interrupted):
        run(body())
