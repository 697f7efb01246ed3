"""Docker Swarm's service commands over Deployments (replicated), DaemonSets (global) and
Jobs (``--restart-condition on-failure|none``): ``shoal service
create|update|ls|ps|inspect|scale|rm`` and ``shoal ps``."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from shoal.api import Kind, Object
from shoal.api.errors import NotFound
from shoal.api.kinds import CONFIG_MAP, DAEMON_SET, DEPLOYMENT, JOB, NODE, POD, SECRET
from shoal.cli import output, swarm_spec
from shoal.cli.context import Failed, Settings, pass_settings, run
from shoal.cli.resources import namespace_option
from shoal.client._interface import Client

_KINDS: tuple[Kind, ...] = (DEPLOYMENT, DAEMON_SET, JOB)
_KIND_BY_NAME = {kind.kind: kind for kind in _KINDS}
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


def service_kind(workload: Object) -> Kind:
    """The kind of a workload ``find_service`` or ``list_services`` returned."""
    return _KIND_BY_NAME[str(workload["kind"])]


async def find_service(client: Client, name: str, namespace: str) -> Object:
    """The Deployment, DaemonSet or Job named ``name``; a one-line error when none exists."""
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


async def progress_counts(client: Client, name: str, namespace: str) -> tuple[int, int, bool, str]:
    """(running, desired, rolled out, "") for a service; (succeeded, completions, True,
    failure) for a job. A Deployment has rolled out once its controller has seen the latest
    spec and every replica is of it (no pod of an older template is left)."""
    workload = await find_service(client, name, namespace)
    if swarm_spec.service_mode(workload) == "replicated job":
        succeeded, completions = swarm_spec.job_completions(workload)
        outcome = swarm_spec.job_outcome(workload)
        return succeeded, completions, True, "" if outcome == "Complete" else outcome
    pods = await service_pods(client, workload)
    running = sum(1 for p in pods if swarm_spec.is_running(p))
    desired = swarm_spec.desired_replicas(workload, await ready_node_count(client))
    return running, desired, swarm_spec.rolled_out(workload), ""


async def wait_converged(
    client: Client, name: str, namespace: str, limit: float, *, job: bool = False
) -> None:
    """A live bar ``NAME: running/desired running`` until every replica runs; for a job,
    ``NAME: succeeded/completions completed`` until it completes (or fails)."""
    console = Console(highlight=False, soft_wrap=False)
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=30))
    deadline = time.monotonic() + limit
    timed_out = False
    word = "completed" if job else "running"
    failure = ""
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{name}: 0/? {word}", total=None)
        while not timed_out:
            count, desired, settled, failure = await progress_counts(client, name, namespace)
            bar.update(
                task,
                description=f"{name}: {count}/{desired} {word}",
                completed=count,
                total=desired or 1,
            )
            if failure:
                break
            if count == desired and settled:
                bar.update(task, completed=desired or 1)
                break
            timed_out = time.monotonic() > deadline
            if not timed_out:
                await asyncio.sleep(_POLL_SECONDS)
    if failure:
        reason = failure.removeprefix("Failed").lstrip(": ") or "no reason given"
        raise click.ClickException(f"job {name} failed: {reason}; see 'shoal service ps {name}'")
    if timed_out:
        verb = "complete" if job else "converge"
        raise click.ClickException(
            f"service {name} did not {verb} within {limit:g}s ({count}/{desired} {word});"
            f" see 'shoal service ps {name}'"
        )
    output.echo(f"verify: job {name} complete" if job else f"verify: service {name} converged")


@click.group()
def service() -> None:
    """Manage services (Docker Swarm's words; Deployments, DaemonSets and Jobs underneath)."""


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
@click.option(
    "-p",
    "--publish",
    multiple=True,
    metavar="SPEC",
    help="[HOST:]CONTAINER[/tcp|udp|sctp], or published=8080,target=80[,protocol=tcp]: a"
    " container port, opened on the node as a hostPort (without HOST, only declared, not"
    " published). There is no ingress routing mesh yet:"
    " the port answers only on the nodes that run a task, and two tasks publishing the same"
    " port cannot share a node.",
)
@click.option(
    "--mount",
    multiple=True,
    metavar="SPEC",
    help="type=volume|bind|tmpfs,source=SRC,target=PATH[,readonly][,tmpfs-size=64m]. bind: a"
    " host path; a named volume: a node-local directory under /var/lib/shoal/volumes; no"
    " source: an empty directory for the task; tmpfs: an in-memory one.",
)
@click.option(
    "--secret",
    multiple=True,
    metavar="SPEC",
    help="NAME or source=NAME,target=PATH,mode=0400: a secret made by 'shoal secret create', as"
    " a read-only file /run/secrets/NAME (a relative target is under /run/secrets).",
)
@click.option(
    "--config",
    multiple=True,
    metavar="SPEC",
    help="NAME or source=NAME,target=PATH,mode=0444: a config made by 'shoal config create', as"
    " a read-only file /NAME (default target).",
)
@click.option(
    "--limit-memory", metavar="SIZE", help="Memory limit: 64M, 1.5G, 512MiB (binary units, as docker)."
)
@click.option("--reserve-memory", metavar="SIZE", help="Memory reservation (request).")
@click.option("--limit-cpu", metavar="CPUS", help="CPU limit: 0.5 (becomes 500m), 2.")
@click.option("--reserve-cpu", metavar="CPUS", help="CPU reservation (request).")
@click.option(
    "--restart-condition",
    type=click.Choice(swarm_spec.RESTART_CONDITIONS),
    help="any (default): a Deployment, always restarted; on-failure or none: a Job that runs"
    " to completion (its replicas run at once; it cannot be scaled).",
)
@click.option(
    "--restart-max-attempts",
    type=int,
    metavar="N",
    help="Retries before a job fails (the Job's backoffLimit; default 6 with on-failure, 0 with"
    " none). Not with --restart-condition any.",
)
@click.option("--health-cmd", metavar="CMD", help="Health check command, run with sh -c in the container.")
@click.option("--health-interval", metavar="DURATION", help="Between checks (as 30s, 1m30s; default 30s).")
@click.option("--health-timeout", metavar="DURATION", help="For one check to answer (default 30s).")
@click.option(
    "--health-retries", type=int, metavar="N", help="Failures in a row that make it unhealthy (default 3)."
)
@click.option("--health-start-period", metavar="DURATION", help="Before the first check (default 0s).")
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
    publish: tuple[str, ...],
    mount: tuple[str, ...],
    secret: tuple[str, ...],
    config: tuple[str, ...],
    restart_condition: str | None,
    restart_max_attempts: int | None,
    health_cmd: str | None,
    health_interval: str | None,
    health_timeout: str | None,
    health_retries: int | None,
    health_start_period: str | None,
    detach: bool | None,
    timeout: float,
    namespace: str | None,
) -> None:
    """Create a service: a Deployment (replicated), a DaemonSet (global), or a Job
    (--restart-condition on-failure|none). Health checks are both readiness and liveness
    probes; durations are rounded up to whole seconds."""
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
        publish=list(publish),
        mounts=list(mount),
        secrets=list(secret),
        configs=list(config),
        restart_condition=restart_condition,
        restart_max_attempts=restart_max_attempts,
        health=swarm_spec.Health(
            cmd=health_cmd,
            interval=health_interval,
            timeout=health_timeout,
            retries=health_retries,
            start_period=health_start_period,
        ),
    )
    obj = swarm_spec.build_service(spec)  # every check before anything is sent
    ns = settings.namespace(namespace)
    if detach is None:
        detach = not sys.stdout.isatty()
    run(_create(settings, obj, ns, None if detach else timeout))


async def _create(settings: Settings, obj: Object, namespace: str, wait_seconds: float | None) -> None:
    kind = service_kind(obj)
    name = obj["metadata"]["name"]
    async with settings.client() as client:
        for other in _KINDS:
            if other is not kind:
                try:
                    await client.get(other, name, namespace)
                except NotFound:
                    continue
                raise click.ClickException(f"service {name} already exists")
        await resolve_files(client, obj, namespace)
        await client.create(kind, obj, namespace)
        output.echo(name)
        if wait_seconds is not None:
            await wait_converged(client, name, namespace, wait_seconds, job=kind is JOB)


async def resolve_files(client: Client, obj: Object, namespace: str) -> None:
    """Check that each --secret and --config exists (as docker refuses a service whose secret
    does not), and point each mount at the key to read: ``swarm_spec.data_key`` (what ``shoal
    secret|config create`` stores), else the object's only key."""
    for what, name, item in swarm_spec.file_refs(obj):
        try:
            found = await client.get(SECRET if what == "secret" else CONFIG_MAP, name, namespace)
        except NotFound:
            raise click.ClickException(f"{what} not found: {name}") from None
        keys = sorted({*(found.get("data") or {}), *(found.get("binaryData") or {})})
        if item["key"] in keys:
            continue
        if len(keys) != 1:
            raise click.ClickException(
                f'{what} "{name}" has no key "{item["key"]}" and {len(keys)} others'
                f" ({', '.join(keys) or 'it is empty'}): give it one key named {item['key']!r}"
            )
        item["key"] = keys[0]


@service.command()
@click.argument("name")
@click.option("--replicas", type=int, help="Number of replicas (replicated services).")
@click.option("--env-add", multiple=True, metavar="K=V", help="Add or change an environment variable.")
@click.option("--env-rm", multiple=True, metavar="K", help="Remove an environment variable.")
@click.option("--publish-add", multiple=True, metavar="SPEC", help="Publish a port, as --publish.")
@click.option(
    "--publish-rm", multiple=True, metavar="SPEC", help="Remove a port: CONTAINER[/PROTO] or HOST:CONTAINER."
)
@click.option("--mount-add", multiple=True, metavar="SPEC", help="Add a mount, as --mount.")
@click.option("--mount-rm", multiple=True, metavar="PATH", help="Remove the mount at this target.")
@click.option("--secret-add", multiple=True, metavar="SPEC", help="Add a secret, as --secret.")
@click.option("--secret-rm", multiple=True, metavar="NAME", help="Remove a secret.")
@click.option("--config-add", multiple=True, metavar="SPEC", help="Add a config, as --config.")
@click.option("--config-rm", multiple=True, metavar="NAME", help="Remove a config.")
@click.option("--limit-memory", metavar="SIZE", help="Memory limit, as in create.")
@click.option("--reserve-memory", metavar="SIZE", help="Memory reservation (request).")
@click.option("--limit-cpu", metavar="CPUS", help="CPU limit, as in create.")
@click.option("--reserve-cpu", metavar="CPUS", help="CPU reservation (request).")
@click.option(
    "-d", "--detach/--no-detach", default=None, help="Return at once (default unless on a terminal)."
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait to converge.")
@namespace_option
@pass_settings
def update(
    settings: Settings,
    name: str,
    replicas: int | None,
    env_add: tuple[str, ...],
    env_rm: tuple[str, ...],
    publish_add: tuple[str, ...],
    publish_rm: tuple[str, ...],
    mount_add: tuple[str, ...],
    mount_rm: tuple[str, ...],
    secret_add: tuple[str, ...],
    secret_rm: tuple[str, ...],
    config_add: tuple[str, ...],
    config_rm: tuple[str, ...],
    limit_memory: str | None,
    reserve_memory: str | None,
    limit_cpu: str | None,
    reserve_cpu: str | None,
    detach: bool | None,
    timeout: float,
    namespace: str | None,
) -> None:
    """Change a replicated or global service: removals (-rm) apply first, then additions
    (-add); the pods are replaced by a rolling update. A job cannot be updated."""
    changes = swarm_spec.ServiceUpdate(
        env_add=list(env_add),
        env_rm=list(env_rm),
        publish_add=list(publish_add),
        publish_rm=list(publish_rm),
        mount_add=list(mount_add),
        mount_rm=list(mount_rm),
        secret_add=list(secret_add),
        secret_rm=list(secret_rm),
        config_add=list(config_add),
        config_rm=list(config_rm),
        limits={k: v for k, v in (("memory", limit_memory), ("cpu", limit_cpu)) if v is not None},
        reservations={k: v for k, v in (("memory", reserve_memory), ("cpu", reserve_cpu)) if v is not None},
        replicas=replicas,
    )
    # Check the syntax of every addition before anything is read or sent.
    swarm_spec.update_service(_EMPTY_DEPLOYMENT, dataclasses.replace(changes, **_NO_REMOVALS))
    if detach is None:
        detach = not sys.stdout.isatty()
    run(_update(settings, name, changes, settings.namespace(namespace), None if detach else timeout))


_EMPTY_DEPLOYMENT: Object = {
    "kind": "Deployment",
    "metadata": {"name": "-"},
    "spec": {"template": {"spec": {"containers": [{"name": "-"}]}}},
}
_NO_REMOVALS: dict[str, Any] = {
    "env_rm": [],
    "publish_rm": [],
    "mount_rm": [],
    "secret_rm": [],
    "config_rm": [],
}


async def _update(
    settings: Settings,
    name: str,
    changes: swarm_spec.ServiceUpdate,
    namespace: str,
    wait_seconds: float | None,
) -> None:
    async with settings.client() as client:
        workload = await find_service(client, name, namespace)
        if changes.replicas is not None and workload["kind"] == "DaemonSet":
            raise click.UsageError("--replicas applies to replicated services, not --mode global")
        kind = service_kind(workload)
        changed = swarm_spec.update_service(workload, changes)
        await resolve_files(client, changed, namespace)
        await client.update(kind, output.document(kind, changed))
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
            rows.append(
                [
                    workload["metadata"]["name"],
                    swarm_spec.service_mode(workload),
                    swarm_spec.replicas_cell(workload, running, nodes),
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
    """The Deployment, DaemonSet or Job behind each service, as JSON or YAML."""
    run(_inspect(settings, names, fmt, settings.namespace(namespace)))


async def _inspect(settings: Settings, names: tuple[str, ...], fmt: str, namespace: str) -> None:
    async with settings.client() as client:
        docs = []
        for name in names:
            workload = await find_service(client, name, namespace)
            docs.append(output.document(service_kind(workload), workload))
    output.echo(output.render_documents(docs, fmt, single=True))


@service.command()
@click.argument("pairs", nargs=-1, required=True, metavar="NAME=N...")
@namespace_option
@pass_settings
def scale(settings: Settings, pairs: tuple[str, ...], namespace: str | None) -> None:
    """Set the replica count of replicated services (not of global services, nor of jobs:
    a Job's completions cannot change; remove it and create it again)."""
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
            kind = (await find_service(client, name, namespace))["kind"]
            if kind == "DaemonSet":
                raise click.ClickException(f"{name}: scale can only be used with replicated mode")
            if kind == "Job":
                raise click.ClickException(
                    f"{name}: a job (--restart-condition on-failure|none) cannot be scaled:"
                    " its completions are fixed; remove it and create it again"
                )
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
            await client.delete(service_kind(workload), name, namespace, propagation_policy="Background")
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
