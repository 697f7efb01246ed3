"""``shoal init`` and ``shoal join``: start a manager (with a local agent), or add a node."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

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
RUNTIME = click.option(
    "--runtime",
    type=click.Choice(["exec", "docker"]),
    default="exec",
    show_default=True,
    help="How containers run: exec (plain processes, no isolation) or docker (the Docker Engine).",
)
DOCKER_HOST = click.option(
    "--docker-host",
    envvar="DOCKER_HOST",
    metavar="URL",
    help="The Docker Engine's address, as unix:///var/run/docker.sock (default: $DOCKER_HOST, then "
    "the usual socket).",
)
ADVERTISE_ADDR = click.option(
    "--advertise-addr",
    metavar="IP",
    help="This node's address as others reach it (the Node's InternalIP). Default: the address "
    "this machine uses to reach the manager.",
)
STATS_INTERVAL = click.option(
    "--stats-interval",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the agent samples its containers' CPU and memory (kubectl top's window).",
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: 90d, 2160h, 1h30m, 10m, 45s (Swarm's --cert-expiry spelling, with days)."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise click.BadParameter(f"{text!r}: expected a duration such as 90d, 2160h, 10m")
    if number:
        raise click.BadParameter(f"{text!r}: a number needs a unit (d, h, m or s)")
    return total


def _cert_expiry(ctx: click.Context, param: click.Parameter, value: str) -> dt.timedelta:
    lifetime = dt.timedelta(seconds=parse_duration(value))
    if lifetime < dt.timedelta(minutes=1):
        raise click.BadParameter(f"{value!r}: node certificates live at least 1m")
    return lifetime


CERT_EXPIRY = click.option(
    "--cert-expiry",
    default="90d",
    show_default=True,
    callback=_cert_expiry,
    metavar="DURATION",
    help="How long node certificates are valid (renewed when a third is left), e.g. 90d, 2160h, 10m.",
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


def _agent_config(
    name: str,
    labels: tuple[str, ...],
    max_pods: int,
    runtime: str,
    docker_host: str | None,
    address: str,
    stats_interval: float,
) -> AgentConfig:
    from shoal.agent.config import AgentConfig  # the agent stack loads only for these commands

    return AgentConfig(
        node_name=name,
        labels=parse_labels(labels),
        max_pods=max_pods,
        runtime=runtime,
        docker_host=docker_host,
        internal_ip=address,
        stats_interval=stats_interval,
    )


def _route_source(url: str) -> str:
    """The local address this machine uses to reach ``url``'s host (no packet is sent)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


@click.command()
@DATA_DIR
@LISTEN
@STORE
@NAME
@LABELS
@MAX_PODS
@RUNTIME
@DOCKER_HOST
@ADVERTISE_ADDR
@STATS_INTERVAL
@CERT_EXPIRY
@click.option("--no-agent", is_flag=True, help="Manage only: run no workloads on this machine.")
@click.option(
    "--autolock",
    is_flag=True,
    help="Seal the key that encrypts Secrets with an unlock key printed once; after a restart "
    "Secrets stay unreadable until `shoal unlock` (as Swarm's autolock).",
)
def init(
    data_dir: Path,
    listen: str,
    store_url: str,
    name: str,
    labels: tuple[str, ...],
    max_pods: int,
    runtime: str,
    docker_host: str | None,
    advertise_addr: str | None,
    stats_interval: float,
    cert_expiry: dt.timedelta,
    no_agent: bool,
    autolock: bool,
) -> None:
    """Start a cluster: a manager, and an agent so that this machine runs workloads."""
    from shoal.manager.run import run_manager

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.expanduser().absolute()
    # The manager's own node says so: Swarm constraints (node.role==manager|worker) and
    # `shoal node ls` read this label.
    host = listen.rsplit(":", 1)[0].strip("[]")
    address = advertise_addr or (host if host not in ("", "0.0.0.0", "::") else "127.0.0.1")
    labels = (f"{MANAGER_ROLE_LABEL}=", *labels)
    agent = (
        None
        if no_agent
        else _agent_config(name, labels, max_pods, runtime, docker_host, address, stats_interval)
    )

    def on_ready(url: str, token: str) -> None:
        click.echo(f"shoal manager ready at {url}; kubeconfig: {data_dir / 'kubeconfig'}")
        click.echo(f"to add a worker, run on it:\n    shoal join {url} --token {token}")

    with suppress(Interrupted):
        run(
            run_manager(
                data_dir,
                listen,
                store_url,
                agent=agent,
                on_ready=on_ready,
                node_cert_lifetime=cert_expiry,
                autolock=autolock,
            )
        )


@click.command()
@click.argument("manager_url")
@click.option("--token", required=True, help="The worker join token (`shoal token show` on a manager).")
@NAME
@LABELS
@MAX_PODS
@DATA_DIR
@RUNTIME
@DOCKER_HOST
@ADVERTISE_ADDR
@STATS_INTERVAL
def join(
    manager_url: str,
    token: str,
    name: str,
    labels: tuple[str, ...],
    max_pods: int,
    data_dir: Path,
    runtime: str,
    docker_host: str | None,
    advertise_addr: str | None,
    stats_interval: float,
) -> None:
    """Join this machine to a cluster as a worker, and run its agent in the foreground."""
    from shoal.agent.run import check_join, run_agent

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    address = advertise_addr or _route_source(manager_url)
    config = _agent_config(name, labels, max_pods, runtime, docker_host, address, stats_interval)
    state_dir = data_dir.expanduser().absolute() / f"agent-{config.node_name}"

    async def body() -> None:
        joined = await check_join(manager_url, token, config.node_name, state_dir)
        click.echo(
            f"node {config.node_name} joined the cluster at {manager_url} as a {joined.role} "
            f"(certificate {joined.credentials.cert_path}, valid until "
            f"{joined.certificate.certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
        await run_agent(manager_url, state_dir, config)

    with suppress(Interrupted):
        run(body())
