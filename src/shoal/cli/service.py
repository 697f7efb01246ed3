"""Docker Swarm's service commands over Deployments (replicated) and DaemonSets (global):
``shoal service create|ls|ps|inspect|scale|rm`` and ``shoal ps``."""

from __future__ import annotations

import asyncio
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from shoal.api import Kind, Object
from shoal.api.errors import NotFound
from shoal.api.kinds import DAEMON_SET, DEPLOYMENT, NODE, POD
from shoal.cli import output, swarm_spec
from shoal.cli.context import Failed, Settings, pass_settings, run
from shoal.cli.resources import namespace_option
from shoal.client._interface import Client

_KINDS: tuple[Kind, ...] = (DEPLOYMENT, DAEMON_SET)
_POLL_SECONDS = 0.5


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows under headers, columns three spaces apart, as docker prints them."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    grid = Table(box=None, show_edge=False, pad_edge=False, header_style=None, padding=(0, 3, 0, 0))
    for header, width in zip(headers, widths, strict=True):
        grid.add_column(Text(header), min_width=width, no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(Text(c) for c in row))
    return output.render_rich(grid, sum(widths) + 3 * len(widths) + 1)


async def find_service(client: Client, name: str, namespace: str) -> Object:
    """The Deployment or DaemonSet named ``name``; a one-line error when neither exists."""
    for kind in _KINDS:
        try:
            found = await client.get(kind, name, namespace)
        except NotFound:
            continue
        return {"kind": kind.kind, **found}
    raise click.ClickException(f"no such service: {name}")


async def list_services(client: Client, namespace: str) -> list[Object]:
    found: list[Object] = []
    for kind in _KINDS:
        items = (await client.list(kind, namespace)).get("items") or []
        found += [{"kind": kind.kind, **item} for item in items]
    return sorted(found, key=lambda o: str(o["metadata"]["name"]))


async def service_pods(client: Client, workload: Object) -> list[Object]:
    selector = swarm_spec.match_labels_selector(workload)
    if not selector:
        return []
    namespace = workload["metadata"].get("namespace")
    items: list[Object] = (await client.list(POD, namespace, label_selector=selector)).get("items") or []
    return sorted(items, key=lambda p: str(p["metadata"]["name"]))


async def ready_node_count(client: Client) -> int:
    nodes = (await client.list(NODE)).get("items") or []
    return sum(
        1 for n in nodes if swarm_spec.node_status(n) == "Ready" and swarm_spec.availability(n) != "drain"
    )


async def progress_counts(client: Client, name: str, namespace: str) -> tuple[int, int]:
    workload = await find_service(client, name, namespace)
    pods = await service_pods(client, workload)
    running = sum(1 for p in pods if swarm_spec.is_running(p))
    return running, swarm_spec.desired_replicas(workload, await ready_node_count(client))


async def wait_converged(client: Client, name: str, namespace: str, limit: float) -> None:
    """A live bar ``NAME: running/desired running`` until every replica runs."""
    console = Console(highlight=False, soft_wrap=False)
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=30))
    deadline = time.monotonic() + limit
    timed_out = False
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{name}: 0/? running", total=None)
        while not timed_out:
            running, desired = await progress_counts(client, name, namespace)
            bar.update(
                task,
                description=f"{name}: {running}/{desired} running",
                completed=running,
                total=desired or 1,
            )
            if running == desired:
                bar.update(task, completed=desired or 1)
                break
            timed_out = time.monotonic() > deadline
            if not timed_out:
                await asyncio.sleep(_POLL_SECONDS)
    if timed_out:
        raise click.ClickException(
            f"service {name} did not converge within {limit:g}s ({running}/{desired} running);"
            f" see 'shoal service ps {name}'"
        )
    output.echo(f"verify: service {name} converged")


@click.group()
def service() -> None:
    """Manage services (Docker Swarm's words; Deployments and DaemonSets underneath)."""


@service.command()
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[-- ARGS...]")
@click.option("--image", metavar="IMG", help="The container image.")
@click.option("--command", "command", metavar="CMD", help="The command to run (split as a shell would).")
@click.option("--replicas", type=int, help="Number of replicas (replicated mode; default 1).")
@click.option("--mode", type=click.Choice(["replicated", "global"]), default="replicated", show_default=True)
@click.option(
    "--constraint", multiple=True, metavar="EXPR", help="Placement constraint, as node.hostname==n1."
)
@click.option("--placement-pref", multiple=True, metavar="PREF", help="spread=node.labels.KEY")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="An environment variable.")
@click.option("--label", multiple=True, metavar="K=V", help="A label on the service.")
@click.option("--limit-memory", metavar="QTY", help="Memory limit (as 256Mi).")
@click.option("--reserve-memory", metavar="QTY", help="Memory reservation (request).")
@click.option("--limit-cpu", metavar="QTY", help="CPU limit (as 0.5).")
@click.option("--reserve-cpu", metavar="QTY", help="CPU reservation (request).")
@click.option(
    "-d", "--detach/--no-detach", default=None, help="Return at once (default unless on a terminal)."
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait to converge.")
@namespace_option
@pass_settings
def create(
    settings: Settings,
    name: str,
    args: tuple[str, ...],
    image: str | None,
    command: str | None,
    replicas: int | None,
    mode: str,
    constraint: tuple[str, ...],
    placement_pref: tuple[str, ...],
    env: tuple[str, ...],
    label: tuple[str, ...],
    limit_memory: str | None,
    reserve_memory: str | None,
    limit_cpu: str | None,
    reserve_cpu: str | None,
    detach: bool | None,
    timeout: float,
    namespace: str | None,
) -> None:
    """Create a service: a Deployment (replicated) or a DaemonSet (global)."""
    spec = swarm_spec.ServiceSpec(
        name=name,
        image=image,
        command=command,
        args=list(args),
        replicas=replicas,
        mode=mode,
        constraints=list(constraint),
        preferences=list(placement_pref),
        env=list(env),
        labels=list(label),
        limits={"memory": limit_memory, "cpu": limit_cpu},
        reservations={"memory": reserve_memory, "cpu": reserve_cpu},
    )
    obj = swarm_spec.build_service(spec)  # every check before anything is sent
    ns = settings.namespace(namespace)
    if detach is None:
        detach = not sys.stdout.isatty()
    run(_create(settings, obj, ns, None if detach else timeout))


async def _create(settings: Settings, obj: Object, namespace: str, wait_seconds: float | None) -> None:
    kind = DAEMON_SET if obj["kind"] == "DaemonSet" else DEPLOYMENT
    name = obj["metadata"]["name"]
    async with settings.client() as client:
        for other in _KINDS:
            if other is not kind:
                try:
                    await client.get(other, name, namespace)
                except NotFound:
                    continue
                raise click.ClickException(f"service {name} already exists")
        await client.create(kind, obj, namespace)
        output.echo(name)
        if wait_seconds is not None:
            await wait_converged(client, name, namespace, wait_seconds)


@service.command("ls")
@namespace_option
@pass_settings
def ls(settings: Settings, namespace: str | None) -> None:
    """List services: NAME MODE REPLICAS IMAGE/COMMAND."""
    run(_ls(settings, settings.namespace(namespace)))


async def _ls(settings: Settings, namespace: str) -> None:
    async with settings.client() as client:
        nodes = await ready_node_count(client)
        rows = []
        for workload in await list_services(client, namespace):
            pods = await service_pods(client, workload)
            running = sum(1 for p in pods if swarm_spec.is_running(p))
            desired = swarm_spec.desired_replicas(workload, nodes)
            rows.append(
                [
                    workload["metadata"]["name"],
                    swarm_spec.service_mode(workload),
                    f"{running}/{desired}",
                    swarm_spec.image_or_command(workload),
                ]
            )
    output.echo(table(["NAME", "MODE", "REPLICAS", "IMAGE/COMMAND"], rows))


_TASK_HEADERS = ["NAME", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"]


@service.command("ps")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@namespace_option
@pass_settings
def service_ps(settings: Settings, names: tuple[str, ...], namespace: str | None) -> None:
    """One row per pod (task) of the services."""
    run(_service_ps(settings, names, settings.namespace(namespace)))


async def _service_ps(settings: Settings, names: tuple[str, ...], namespace: str) -> None:
    async with settings.client() as client:
        rows = []
        for name in names:
            workload = await find_service(client, name, namespace)
            rows += [swarm_spec.task_row(p) for p in await service_pods(client, workload)]
    output.echo(table(_TASK_HEADERS, rows))


@service.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-o", "--output", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True)
@namespace_option
@pass_settings
def inspect(settings: Settings, names: tuple[str, ...], fmt: str, namespace: str | None) -> None:
    """The Deployment or DaemonSet behind each service, as JSON or YAML."""
    run(_inspect(settings, names, fmt, settings.namespace(namespace)))


async def _inspect(settings: Settings, names: tuple[str, ...], fmt: str, namespace: str) -> None:
    async with settings.client() as client:
        docs = []
        for name in names:
            workload = await find_service(client, name, namespace)
            kind = DAEMON_SET if workload["kind"] == "DaemonSet" else DEPLOYMENT
            docs.append(output.document(kind, workload))
    output.echo(output.render_documents(docs, fmt, single=True))


@service.command()
@click.argument("pairs", nargs=-1, required=True, metavar="NAME=N...")
@namespace_option
@pass_settings
def scale(settings: Settings, pairs: tuple[str, ...], namespace: str | None) -> None:
    """Set the replica count of replicated services."""
    wanted: list[tuple[str, int]] = []
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name or not count.isdigit():
            raise click.UsageError(f"{pair!r}: expected NAME=N with N a whole number, as in web=3")
        wanted.append((name, int(count)))
    run(_scale(settings, wanted, settings.namespace(namespace)))


async def _scale(settings: Settings, wanted: list[tuple[str, int]], namespace: str) -> None:
    async with settings.client() as client:
        for name, _ in wanted:  # check them all before changing any
            if (await find_service(client, name, namespace))["kind"] == "DaemonSet":
                raise click.ClickException(f"{name}: scale can only be used with replicated mode")
        for name, count in wanted:
            await client.patch(DEPLOYMENT, name, {"spec": {"replicas": count}}, namespace)
            output.echo(f"{name} scaled to {count}")


@service.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@namespace_option
@pass_settings
def rm(settings: Settings, names: tuple[str, ...], namespace: str | None) -> None:
    """Remove services, and their pods (background cascade)."""
    run(_rm(settings, names, settings.namespace(namespace)))


async def _rm(settings: Settings, names: tuple[str, ...], namespace: str) -> None:
    failed = False
    async with settings.client() as client:
        for name in names:
            try:
                workload = await find_service(client, name, namespace)
            except click.ClickException as err:
                output.echo_error(err.format_message())
                failed = True
                continue
            kind = DAEMON_SET if workload["kind"] == "DaemonSet" else DEPLOYMENT
            await client.delete(kind, name, namespace, propagation_policy="Background")
            output.echo(name)
    if failed:
        raise Failed()


@click.command("ps")
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace (the default without -n).")
@pass_settings
def ps(settings: Settings, namespace: str | None, all_namespaces: bool) -> None:
    """Every pod (task) of every service across the cluster."""
    if namespace and all_namespaces:
        raise click.UsageError("give either -n/--namespace or -A/--all-namespaces, not both")
    run(_ps(settings, namespace))


async def _ps(settings: Settings, namespace: str | None) -> None:
    async with settings.client() as client:
        rows = []
        namespaces: list[str | None] = [namespace] if namespace else [None]
        for ns in namespaces:
            pods = (await client.list(POD, ns)).get("items") or []
            owned = [p for p in pods if _service_name(p)]
            for pod in sorted(owned, key=lambda p: (_service_name(p), str(p["metadata"]["name"]))):
                rows.append([_service_name(pod), *swarm_spec.task_row(pod)])
    output.echo(table(["SERVICE", *_TASK_HEADERS], rows))


def _service_name(pod: Object) -> str:
    """The service a pod belongs to: its ``shoal.io/service`` label, else its controller's
    name (a ReplicaSet ``web-7d9f`` reads as ``web``)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(swarm_spec.SERVICE_LABEL):
        return str(labels[swarm_spec.SERVICE_LABEL])
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            name = str(ref.get("name", ""))
            if ref.get("kind") == "ReplicaSet" and "pod-template-hash" in labels:
                return name.removesuffix("-" + str(labels["pod-template-hash"]))
            return name
    return ""
