"""Docker Swarm's secrets and configs: ``shoal secret|config create|ls|inspect|rm`` over
core/v1 Secrets (type Opaque) and ConfigMaps.

Each holds its content under one key, ``swarm_spec.data_key(NAME)`` (the object's own name),
which ``service create --secret/--config`` mounts. A ConfigMap keeps UTF-8 text in ``data``
and anything else in ``binaryData``; a Secret is bytes either way. Objects made here carry
the label ``shoal.io/swarm-object=secret|config``: ``ls`` lists only those, while ``inspect``
and ``rm`` take any Secret or ConfigMap by name. ``rm`` refuses, and removes nothing, while
any Deployment, DaemonSet, Job, ReplicaSet or Pod of the namespace refers to one of the
objects (volumes, projected volumes, ``env[].valueFrom``, ``envFrom``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import click

from shoal.api import Kind, Object
from shoal.api.errors import AlreadyExists, NotFound
from shoal.api.kinds import CONFIG_MAP, DAEMON_SET, DEPLOYMENT, JOB, POD, REPLICA_SET, SECRET
from shoal.cli import output, swarm_spec
from shoal.cli.context import Failed, Settings, pass_settings, run
from shoal.cli.resources import namespace_option
from shoal.cli.service import table
from shoal.client._interface import Client

_USER_KINDS: tuple[Kind, ...] = (DEPLOYMENT, DAEMON_SET, JOB, REPLICA_SET, POD)


@dataclass(frozen=True)
class What:
    """``secret`` or ``config``, and the kind that stores it."""

    word: str
    kind: Kind

    @property
    def label(self) -> str:
        return f"{swarm_spec.SWARM_OBJECT_LABEL}={self.word}"


SECRET_WHAT = What("secret", SECRET)
CONFIG_WHAT = What("config", CONFIG_MAP)


# -- objects (pure) ------------------------------------------------------------------------


def build_object(what: What, name: str, content: bytes, labels: dict[str, str]) -> Object:
    """The Secret or ConfigMap that holds ``content`` under ``data_key(name)``."""
    if not content:
        raise click.UsageError(
            f"{what.word} {name}: the content is empty (docker refuses an empty {what.word})"
        )
    key = swarm_spec.data_key(name)
    meta = {"name": name, "labels": {**labels, swarm_spec.SWARM_OBJECT_LABEL: what.word}}
    encoded = base64.b64encode(content).decode("ascii")
    if what is SECRET_WHAT:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": {key: encoded},
        }
    try:
        body: dict[str, Any] = {"data": {key: content.decode("utf-8")}}
    except UnicodeDecodeError:
        body = {"binaryData": {key: encoded}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **body}


def _pod_spec(obj: Object, kind: Kind) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if kind is POD:
        return dict(spec)
    return dict((spec.get("template") or {}).get("spec") or {})


def references(pod_spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``("secret"|"config", name)`` for each Secret and ConfigMap a pod spec refers to."""
    for volume in pod_spec.get("volumes") or []:
        if volume.get("secret"):
            yield "secret", str(volume["secret"].get("secretName", ""))
        if volume.get("configMap"):
            yield "config", str(volume["configMap"].get("name", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                yield "secret", str(source["secret"].get("name", ""))
            if source.get("configMap"):
                yield "config", str(source["configMap"].get("name", ""))
    containers = [
        *(pod_spec.get("initContainers") or []),
        *(pod_spec.get("containers") or []),
        *(pod_spec.get("ephemeralContainers") or []),
    ]
    for container in containers:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if source.get("secretKeyRef"):
                yield "secret", str(source["secretKeyRef"].get("name", ""))
            if source.get("configMapKeyRef"):
                yield "config", str(source["configMapKeyRef"].get("name", ""))
        for env_from in container.get("envFrom") or []:
            if env_from.get("secretRef"):
                yield "secret", str(env_from["secretRef"].get("name", ""))
            if env_from.get("configMapRef"):
                yield "config", str(env_from["configMapRef"].get("name", ""))


def users_by_object(objects: list[tuple[Kind, Object]]) -> dict[tuple[str, str], list[str]]:
    """Who uses each secret and config: ``service NAME`` for a workload (or pod) labelled
    as a service, else ``kind/name``. An object whose controller is among ``objects`` (a
    service's pods, a Deployment's ReplicaSets) is counted as its controller."""
    present = {(kind.kind, str(obj["metadata"]["name"])) for kind, obj in objects}
    found: dict[tuple[str, str], set[str]] = {}
    for kind, obj in objects:
        meta = obj.get("metadata") or {}
        owners = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
        if any((r.get("kind"), r.get("name")) in present for r in owners):
            continue
        service = (meta.get("labels") or {}).get(swarm_spec.SERVICE_LABEL)
        user = f"service {service}" if service else f"{kind.kind.lower()}/{meta.get('name')}"
        for ref in references(_pod_spec(obj, kind)):
            found.setdefault(ref, set()).add(user)
    return {ref: sorted(users) for ref, users in found.items()}


def users_text(users: list[str]) -> str:
    """``service api, web, pod/debug``: the services under one word, then the others."""
    services = [u.removeprefix("service ") for u in users if u.startswith("service ")]
    others = [u for u in users if not u.startswith("service ")]
    return ", ".join(([f"service {', '.join(services)}"] if services else []) + others)


def in_use_message(what: What, name: str, users: list[str]) -> str:
    """``secret "db-pass" is in use by service api, web``."""
    return f'{what.word} "{name}" is in use by {users_text(users)}'


def inspect_document(what: What, obj: Object) -> Object:
    """docker's ``secret|config inspect`` shape: ID, Version, CreatedAt, UpdatedAt, Spec (Name,
    Labels, and for a config its Data, base64 as docker prints it). A secret's data is never
    shown."""
    meta = obj.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != swarm_spec.SWARM_OBJECT_LABEL}
    version = str(meta.get("resourceVersion") or "")
    created = str(meta.get("creationTimestamp") or "")
    updates = [str(m["time"]) for m in meta.get("managedFields") or [] if m.get("time")]
    spec: dict[str, Any] = {"Name": meta.get("name"), "Labels": labels}
    if what is CONFIG_WHAT:
        content = _config_content(obj, str(meta.get("name", "")))
        if content is not None:
            spec["Data"] = base64.b64encode(content).decode("ascii")
    return {
        "ID": meta.get("uid", ""),
        "Version": {"Index": int(version) if version.isdigit() else version},
        "CreatedAt": created,
        "UpdatedAt": max([created, *updates]),
        "Spec": spec,
    }


def _config_content(obj: Object, name: str) -> bytes | None:
    """The content a --config mount shows: ``data_key(name)``, else the only key."""
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    keys = sorted({*data, *binary})
    key = swarm_spec.data_key(name)
    if key not in keys:
        if len(keys) != 1:
            return None
        key = keys[0]
    if key in data:
        return str(data[key]).encode("utf-8")
    return base64.b64decode(str(binary[key]))


# -- commands ------------------------------------------------------------------------------


async def _users(client: Client, namespace: str) -> dict[tuple[str, str], list[str]]:
    objects: list[tuple[Kind, Object]] = []
    for kind in _USER_KINDS:
        items = (await client.list(kind, namespace)).get("items") or []
        objects += [(kind, item) for item in items]
    return users_by_object(objects)


def _make_group(what: What, summary: str) -> click.Group:
    word = what.word

    @click.group(name=word, help=summary)
    def group() -> None:
        pass

    @group.command("create", help=f"Create a {word} from FILE, or from standard input with -.")
    @click.argument("name")
    @click.argument("source", type=click.File("rb"), metavar="FILE|-")
    @click.option("-l", "--label", multiple=True, metavar="K=V", help=f"A label on the {word}.")
    @namespace_option
    @pass_settings
    def create(
        settings: Settings, name: str, source: IO[bytes], label: tuple[str, ...], namespace: str | None
    ) -> None:
        obj = build_object(what, name, source.read(), swarm_spec.key_values(list(label), "--label"))
        run(_create(settings, obj, settings.namespace(namespace)))

    async def _create(settings: Settings, obj: Object, namespace: str) -> None:
        name = obj["metadata"]["name"]
        async with settings.client() as client:
            try:
                await client.create(what.kind, obj, namespace)
            except AlreadyExists:
                raise click.ClickException(f'{word} "{name}" already exists') from None
        output.echo(name)

    @group.command(
        "ls",
        short_help=f"List {word}s.",
        help=f"List the {word}s made by 'shoal {word} create': NAME, CREATED, USED BY.",
    )
    @namespace_option
    @pass_settings
    def ls(settings: Settings, namespace: str | None) -> None:
        run(_ls(settings, settings.namespace(namespace)))

    async def _ls(settings: Settings, namespace: str) -> None:
        async with settings.client() as client:
            items = (await client.list(what.kind, namespace, label_selector=what.label)).get("items") or []
            users = await _users(client, namespace) if items else {}
        rows = []
        for item in sorted(items, key=lambda o: str(o["metadata"]["name"])):
            name = str(item["metadata"]["name"])
            used = users.get((word, name), [])
            rows.append([name, swarm_spec.ago(item["metadata"].get("creationTimestamp")), users_text(used)])
        output.echo(table(["NAME", "CREATED", "USED BY"], rows))

    data_note = "never its data" if what is SECRET_WHAT else "its data base64-encoded, as docker prints it"

    @group.command("inspect", help=f"Each {word} as JSON, as docker prints it ({data_note}).")
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @namespace_option
    @pass_settings
    def inspect(settings: Settings, names: tuple[str, ...], namespace: str | None) -> None:
        run(_inspect(settings, names, settings.namespace(namespace)))

    async def _inspect(settings: Settings, names: tuple[str, ...], namespace: str) -> None:
        docs, missing = [], []
        async with settings.client() as client:
            for name in names:
                try:
                    docs.append(inspect_document(what, await client.get(what.kind, name, namespace)))
                except NotFound:
                    missing.append(name)
        output.echo(output.to_json(docs))
        for name in missing:
            output.echo_error(f"no such {word}: {name}")
        if missing:
            raise Failed()

    @group.command(
        "rm",
        help=f"Remove {word}s. If any of them is missing or in use by a service, pod or other"
        " workload, nothing is removed.",
    )
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @namespace_option
    @pass_settings
    def rm(settings: Settings, names: tuple[str, ...], namespace: str | None) -> None:
        run(_rm(settings, names, settings.namespace(namespace)))

    async def _rm(settings: Settings, names: tuple[str, ...], namespace: str) -> None:
        failed = False
        async with settings.client() as client:
            users = await _users(client, namespace)
            for name in dict.fromkeys(names):  # check them all before removing any
                try:
                    await client.get(what.kind, name, namespace)
                except NotFound:
                    output.echo_error(f"no such {word}: {name}")
                    failed = True
                    continue
                if users.get((word, name)):
                    output.echo_error(in_use_message(what, name, users[(word, name)]))
                    failed = True
            if failed:
                raise Failed()
            for name in dict.fromkeys(names):
                await client.delete(what.kind, name, namespace)
                output.echo(name)

    return group


secret = _make_group(
    SECRET_WHAT,
    "Manage secrets (Docker Swarm's words; Opaque Secrets underneath, mounted by"
    " 'shoal service create --secret').",
)
config = _make_group(
    CONFIG_WHAT,
    "Manage configs (Docker Swarm's words; ConfigMaps underneath, mounted by"
    " 'shoal service create --config').",
)
