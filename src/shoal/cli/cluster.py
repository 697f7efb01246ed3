"""``shoal init`` and ``shoal join``: start a manager (with a local agent), or add a node."""

from __future__ import annotations

import contextlib
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


ETCD_CLIENT_PORT = click.option(
    "--etcd-client-port",
    type=click.IntRange(1, 65535),
    default=2379,
    show_default=True,
    help="With --ha: the port of this manager's etcd member for clients (the managers).",
)
ETCD_PEER_PORT = click.option(
    "--etcd-peer-port",
    type=click.IntRange(1, 65535),
    default=2380,
    show_default=True,
    help="With --ha: the port of this manager's etcd member for the other members.",
)

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
    "--ha",
    is_flag=True,
    help="Keep the state in an etcd member started beside this manager (Debian's etcd), so that "
    "managers joining later add members: 3 managers tolerate the loss of 1, 5 of 2.",
)
@ETCD_CLIENT_PORT
@ETCD_PEER_PORT
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
    ha: bool,
    etcd_client_port: int,
    etcd_peer_port: int,
    autolock: bool,
) -> None:
    """Start a cluster: a manager, and an agent so that this machine runs workloads."""
    from shoal.manager import etcd_member
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

    try:
        member = etcd_member.MemberConfig.load(data_dir)  # a manager that ran one before keeps it
    except etcd_member.MemberError as err:
        raise click.ClickException(str(err)) from None
    if ha or member is not None:
        if store_url:
            raise click.UsageError("--ha keeps the state in its own etcd member: leave --store out")
        if member is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            member = etcd_member.MemberConfig.new(name, address, etcd_client_port, etcd_peer_port)
            member.save(data_dir)

    async def body() -> None:
        url = store_url
        async with contextlib.AsyncExitStack() as stack:
            if member is not None:
                url = (await stack.enter_async_context(etcd_member.running(member, data_dir))).store_url
            await run_manager(
                data_dir,
                listen,
                url,
                agent=agent,
                on_ready=on_ready,
                node_cert_lifetime=cert_expiry,
                autolock=autolock,
                name=name,
            )

    with suppress(Interrupted):
        run(body())


@click.command()
@click.argument("manager_url", required=False)
@click.option(
    "--manager",
    "manager_of",
    metavar="URL",
    help="Join as another manager of the cluster at URL (with the manager token): serve the API "
    "over the cluster's shared store and stand for leadership.",
)
@click.option("--token", required=True, help="The join token (`shoal token show [manager]` on a manager).")
@NAME
@LABELS
@MAX_PODS
@DATA_DIR
@RUNTIME
@DOCKER_HOST
@ADVERTISE_ADDR
@STATS_INTERVAL
@LISTEN
@click.option("--no-agent", is_flag=True, help="With --manager: manage only, run no workloads here.")
@ETCD_CLIENT_PORT
@ETCD_PEER_PORT
def join(
    manager_url: str | None,
    manager_of: str | None,
    token: str,
    name: str,
    labels: tuple[str, ...],
    max_pods: int,
    data_dir: Path,
    runtime: str,
    docker_host: str | None,
    advertise_addr: str | None,
    stats_interval: float,
    listen: str,
    no_agent: bool,
    etcd_client_port: int,
    etcd_peer_port: int,
) -> None:
    """Join this machine to a cluster: as a worker (MANAGER_URL), running its agent in the
    foreground, or as one more manager (--manager URL)."""
    from shoal.agent.run import check_join, run_agent

    if bool(manager_url) == bool(manager_of):
        raise click.UsageError("give the manager's URL either as MANAGER_URL (a worker) or as --manager URL")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if manager_of:
        _join_as_manager(
            manager_of,
            token,
            name,
            _agent_config(
                name,
                (f"{MANAGER_ROLE_LABEL}=", *labels),
                max_pods,
                runtime,
                docker_host,
                advertise_addr or _route_source(manager_of),
                stats_interval,
            ),
            data_dir.expanduser().absolute(),
            listen,
            no_agent,
            (etcd_client_port, etcd_peer_port),
        )
        return
    assert manager_url is not None
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


def _join_as_manager(
    url: str,
    token: str,
    name: str,
    agent: AgentConfig,
    data_dir: Path,
    listen: str,
    no_agent: bool,
    etcd_ports: tuple[int, int],
) -> None:
    """The manager join: the CA key, keyring and store URL come from the cluster
    (``security.bundle``); a cluster whose managers run etcd members (``--ha``) gets one more
    here; then this machine runs a manager as ``shoal init`` does."""
    from shoal.manager.run import run_manager
    from shoal.security import bundle
    from shoal.security.join import join_cluster

    def on_ready(own_url: str, worker_token: str) -> None:
        click.echo(
            f"shoal manager {name} ready at {own_url} (joined {url}); kubeconfig: {data_dir / 'kubeconfig'}"
        )

    async def body() -> None:
        joined = await join_cluster(url, token, name, data_dir / "agent", as_manager=True)
        store_url = bundle.save(data_dir, joined.manager, url)
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(joined.manager, dict) and joined.manager.get("embeddedEtcd"):
                store_url = await _add_member(stack, data_dir, name, agent.internal_ip, etcd_ports, store_url)
            await run_manager(
                data_dir, listen, store_url, agent=None if no_agent else agent, on_ready=on_ready, name=name
            )

    with suppress(Interrupted):
        run(body())


async def _add_member(
    stack: contextlib.AsyncExitStack,
    data_dir: Path,
    name: str,
    address: str,
    ports: tuple[int, int],
    cluster_store: str,
) -> str:
    """Run this manager's etcd member (added to the cluster the first time) in ``stack``; the
    store URL naming every member."""
    from shoal.manager import etcd_member

    member = etcd_member.MemberConfig.load(data_dir)
    if member is not None and (data_dir / etcd_member.DATA_DIR).exists():  # a restart
        started = await stack.enter_async_context(etcd_member.running(member, data_dir))
        return started.store_url
    member = etcd_member.MemberConfig.new(name, address, *ports)
    initial = await etcd_member.add_to_cluster(member, cluster_store)
    member.save(data_dir)
    started = await stack.enter_async_context(
        etcd_member.running(member, data_dir, initial_cluster=initial, state="existing")
    )
    return started.store_url
