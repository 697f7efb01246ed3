"""Docker Swarm's node commands: ``shoal node ls|inspect|update|rm``.

Availability is the ``shoal.io/availability`` annotation the scheduler reads: ``pause``
stops new placements, ``drain`` also moves the node's controlled pods away (they are
deleted, and their controllers recreate them on the nodes the scheduler still accepts).
``rm`` revokes the node's certificate (``security.join.revoke_node``) and deletes the Node.
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from shoal.api import Object
from shoal.api.errors import NotFound
from shoal.api.kinds import NODE, POD
from shoal.cli import output, swarm_spec
from shoal.cli.context import Settings, pass_settings, run
from shoal.cli.service import table
from shoal.client._interface import Client
from shoal.manager import registry


@click.group()
def node() -> None:
    """Manage the cluster's nodes."""


@node.command("ls")
@pass_settings
def ls(settings: Settings) -> None:
    """List nodes: NAME STATUS AVAILABILITY MANAGER STATUS. Managers that run no agent are
    listed too (Drain: they take no workloads)."""
    run(_ls(settings))


async def _ls(settings: Settings) -> None:
    async with settings.client() as client:
        nodes = (await client.list(NODE)).get("items") or []
        managers = {m.name: m for m in await registry.managers(client)}
        leading = await registry.leaders(client)
    rows: dict[str, list[str]] = {}
    for n in nodes:
        name = str(n["metadata"]["name"])
        manager = managers.get(name)
        status = ""
        if manager is not None or swarm_spec.is_manager(n):
            status = swarm_spec.manager_status(name, manager is not None and manager.reachable(), leading)
        rows[name] = [name, swarm_spec.node_status(n), swarm_spec.availability(n).capitalize(), status]
    for name, manager in managers.items():
        if name not in rows:
            reachable = manager.reachable()
            status = swarm_spec.manager_status(name, reachable, leading)
            rows[name] = [name, "Ready" if reachable else "Down", "Drain", status]
    output.echo(table(["NAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"], [rows[k] for k in sorted(rows)]))


@node.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-o", "--output", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True)
@pass_settings
def inspect(settings: Settings, names: tuple[str, ...], fmt: str) -> None:
    """The Node objects, as JSON or YAML."""
    run(_inspect(settings, names, fmt))


async def _inspect(settings: Settings, names: tuple[str, ...], fmt: str) -> None:
    async with settings.client() as client:
        docs = [output.document(NODE, await client.get(NODE, name)) for name in names]
    output.echo(output.render_documents(docs, fmt, single=True))


@node.command()
@click.argument("name")
@click.option("--availability", type=click.Choice(swarm_spec.AVAILABILITIES), help="active, pause or drain.")
@click.option("--label-add", multiple=True, metavar="K=V", help="Add or change a node label.")
@click.option("--label-rm", multiple=True, metavar="K", help="Remove a node label.")
@pass_settings
def update(
    settings: Settings,
    name: str,
    availability: str | None,
    label_add: tuple[str, ...],
    label_rm: tuple[str, ...],
) -> None:
    """Change a node's availability or labels; drain moves its pods to other nodes."""
    added = swarm_spec.key_values(list(label_add), "--label-add")
    for key in label_rm:
        if not key or "=" in key:
            raise click.UsageError(f"--label-rm {key!r}: expected a label KEY")
        if key in added:
            raise click.UsageError(f"label {key!r} is both added and removed")
    if availability is None and not added and not label_rm:
        raise click.UsageError("nothing to change: give --availability, --label-add or --label-rm")
    run(_update(settings, name, availability, added, list(label_rm)))


async def _update(
    settings: Settings, name: str, availability: str | None, added: dict[str, str], removed: list[str]
) -> None:
    async with settings.client() as client:
        current = await client.get(NODE, name)
        labels = (current.get("metadata") or {}).get("labels") or {}
        missing = [key for key in removed if key not in labels]
        if missing:
            raise click.ClickException(f"key {missing[0]!r} doesn't exist in node {name}'s labels")
        meta: dict[str, Any] = {}
        if added or removed:
            meta["labels"] = {**added, **dict.fromkeys(removed)}
        if availability is not None:
            meta["annotations"] = {swarm_spec.AVAILABILITY_ANNOTATION: availability}
        await client.patch(NODE, name, {"metadata": meta})
        output.echo(name)
        if availability == "drain":
            moved = await _drain(client, name)
            output.echo(f"{name}: drained, {moved} pod{'s' if moved != 1 else ''} moved")


@node.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-f", "--force", is_flag=True, help="Remove a node that is still Ready.")
@pass_settings
def rm(settings: Settings, names: tuple[str, ...], force: bool) -> None:
    """Remove nodes from the cluster: their certificates are revoked, their Node objects deleted.
    A Ready node is refused without --force (drain it and stop its agent first)."""
    run(_rm(settings, names, force))


async def _rm(settings: Settings, names: tuple[str, ...], force: bool) -> None:
    from shoal.security import join as node_join  # the PKI loads only for this command

    async with settings.client() as client:
        for name in names:
            current = await client.get(NODE, name)
            if swarm_spec.node_status(current) == "Ready" and not force:
                raise click.ClickException(
                    f"node {name} is Ready: drain it (shoal node update --availability drain {name}), "
                    "stop its agent, or remove it anyway with --force"
                )
            serials = await node_join.revoke_node(client, name)
            with contextlib.suppress(NotFound):
                await client.delete(NODE, name)
            listed = ", ".join(f"{serial:x}" for serial in serials)
            revoked = f" (certificate{'s' if len(serials) > 1 else ''} {listed} revoked)" if serials else ""
            output.echo(f"{name}{revoked}")


async def _drain(client: Client, name: str) -> int:
    """Delete the node's pods that a controller will recreate elsewhere; how many."""
    pods = (await client.list(POD, None, field_selector=f"spec.nodeName={name}")).get("items") or []
    moved = 0
    for pod in pods:
        if not _movable(pod):
            continue
        meta = pod["metadata"]
        try:
            await client.delete(POD, meta["name"], meta.get("namespace"))
        except NotFound:
            continue  # gone already
        moved += 1
    return moved


def _movable(pod: Object) -> bool:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return any(ref.get("controller") for ref in meta.get("ownerReferences") or [])
