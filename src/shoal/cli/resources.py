"""The commands on objects: get, describe, delete, apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import ApiError, Expired, NotFound, ServiceUnavailable
from shoal.cli import output
from shoal.cli.context import Failed, Interrupted, Settings, pass_settings, run
from shoal.cli.describe import describe as describe_text
from shoal.client import manifests
from shoal.client._interface import Client

F = TypeVar("F", bound=Callable[..., Any])


def namespace_option(func: F) -> F:
    return click.option(
        "-n",
        "--namespace",
        metavar="NS",
        help="The namespace (default: the kubeconfig context's, usually default).",
    )(func)


# -- what the user named -------------------------------------------------------------------


@dataclass
class Target:
    kind: Kind
    names: list[str]


def resolve_kinds(words: str) -> list[Kind]:
    """``deploy,svc`` or ``all`` as kinds, each once, in the order given."""
    kinds: list[Kind] = []
    for word in words.split(","):
        if not word:
            continue
        if word.lower() == "all":
            found = [k for k in REGISTRY.kinds if "all" in k.categories]
        else:
            kind = REGISTRY.lookup(word)
            if kind is None:
                raise click.ClickException(f'the server doesn\'t have a resource type "{word}"')
            found = [kind]
        kinds += [k for k in found if k not in kinds]
    return kinds


def parse_targets(args: tuple[str, ...]) -> list[Target]:
    """``KIND[,KIND...] [NAME...]`` or ``KIND/NAME...`` as (kind, names) pairs."""
    if not args:
        raise click.UsageError("name the type of resource, as in 'deployments' or 'configmaps'")
    if "/" in args[0]:
        targets: list[Target] = []
        for arg in args:
            word, _, name = arg.partition("/")
            if not name or not word:
                raise click.UsageError(f"{arg!r}: expected KIND/NAME, as in deployment/web")
            kinds = resolve_kinds(word)
            if len(kinds) != 1:
                raise click.UsageError(f"{arg!r}: KIND/NAME takes exactly one kind")
            same = [t for t in targets if t.kind is kinds[0]]
            if same:
                same[0].names.append(name)
            else:
                targets.append(Target(kinds[0], [name]))
        return targets
    names = list(args[1:])
    for name in names:
        if "/" in name:
            raise click.UsageError(f"{name!r}: give either KIND NAME... or KIND/NAME..., not both")
    return [Target(kind, list(names)) for kind in resolve_kinds(args[0])]


def scope(kind: Kind, namespace: str | None) -> str | None:
    return namespace if kind.namespaced else None


# -- get -----------------------------------------------------------------------------------


@dataclass
class GetRequest:
    targets: list[Target]
    namespace: str  # for objects named one by one, and the message when nothing is found
    all_namespaces: bool
    label_selector: str
    field_selector: str
    fmt: str | None
    watch: bool

    @property
    def list_namespace(self) -> str | None:
        return None if self.all_namespaces else self.namespace

    def printer(self, kind: Kind) -> output.TablePrinter:
        return output.TablePrinter(
            kind,
            wide=self.fmt == "wide",
            namespace_column=self.all_namespaces,
            qualify_names=len(self.targets) > 1,
        )


@click.command()
@click.argument("args", nargs=-1, metavar="KIND[,KIND...] [NAME...]")
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List objects in every namespace.")
@click.option(
    "-l", "--selector", default="", metavar="SELECTOR", help="Label selector, as in app=web,tier!=db."
)
@click.option(
    "--field-selector", default="", metavar="SELECTOR", help="Field selector, as in metadata.name=web."
)
@click.option("-o", "--output", "fmt", type=click.Choice(output.FORMATS), help="Output format.")
@click.option(
    "-w", "--watch", is_flag=True, help="After the current objects, print each change as it happens."
)
@pass_settings
def get(
    settings: Settings,
    args: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    selector: str,
    field_selector: str,
    fmt: str | None,
    watch: bool,
) -> None:
    """Show objects as a table, YAML, JSON or names.

    KIND is a plural, singular or short name (deployments, deployment, deploy), several
    separated by commas, or "all".
    """
    targets = parse_targets(args)
    if namespace and all_namespaces:
        raise click.UsageError("give either -n/--namespace or -A/--all-namespaces, not both")
    named = any(t.names for t in targets)
    if named and (selector or field_selector):
        raise click.UsageError("give either object names or selectors (-l, --field-selector), not both")
    if watch and (len(targets) != 1 or len(targets[0].names) > 1):
        raise click.UsageError("-w/--watch takes one kind and at most one name")
    request = GetRequest(
        targets, settings.namespace(namespace), all_namespaces, selector, field_selector, fmt, watch
    )
    try:
        run(_get(settings, request))
    except Interrupted:
        if not watch:
            raise


async def _get(settings: Settings, request: GetRequest) -> None:
    async with settings.client() as client:
        failed = False
        results: list[tuple[Kind, list[Object], str]] = []
        for target in request.targets:
            kind = target.kind
            if target.names and not request.watch:
                found = []
                for name in target.names:
                    try:
                        found.append(await client.get(kind, name, scope(kind, request.namespace)))
                    except NotFound as err:
                        output.echo_error(err.message)
                        failed = True
                results.append((kind, found, ""))
            else:
                field_selector = request.field_selector
                if target.names:  # get -w KIND NAME: watch that one object
                    field_selector = f"metadata.name={target.names[0]}"
                listed = await client.list(
                    kind,
                    scope(kind, request.list_namespace),
                    label_selector=request.label_selector,
                    field_selector=field_selector,
                )
                version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                results.append((kind, list(listed.get("items") or []), version))
        printers = _print_results(request, results, failed)
        if request.watch:
            kind, _, version = results[0]
            await _watch(
                client,
                request,
                kind,
                version,
                printers.get(kind.kind) or request.printer(kind),
                header=kind.kind not in printers,
            )
        if failed:
            raise Failed()


def _print_results(
    request: GetRequest, results: list[tuple[Kind, list[Object], str]], failed: bool
) -> dict[str, output.TablePrinter]:
    """Print what get found; returns the table printers used, by kind name."""
    fmt = request.fmt
    if fmt in ("yaml", "json"):
        if request.watch:  # a stream of documents, the current ones first
            for kind, objects, _ in results:
                for obj in objects:
                    _print_event(request, kind, obj, request.printer(kind), False)
            return {}
        docs = [output.document(kind, obj) for kind, objects, _ in results for obj in objects]
        single = len(request.targets) == 1 and len(request.targets[0].names) == 1
        if docs or not failed:
            output.echo(output.render_documents(docs, fmt, single=single))
        return {}
    if fmt == "name":
        for kind, objects, _ in results:
            for obj in objects:
                output.echo(output.object_name(kind, obj))
    printers: dict[str, output.TablePrinter] = {}
    if fmt in (None, "wide"):
        first = True
        for kind, objects, _ in results:
            if not objects:
                continue
            if not first:
                output.echo()
            first = False
            printers[kind.kind] = printer = request.printer(kind)
            output.echo(printer.render(objects))
    nothing = not any(objects for _, objects, _ in results)
    if nothing and not failed and not request.watch and not any(t.names for t in request.targets):
        namespaced = any(t.kind.namespaced for t in request.targets)
        click.echo(output.no_resources(request.list_namespace if namespaced else None), err=True)
    return printers


async def _watch(
    client: Client,
    request: GetRequest,
    kind: Kind,
    version: str,
    printer: output.TablePrinter,
    *,
    header: bool,
) -> None:
    """Print each change after ``version`` until interrupted; relists when the server has
    forgotten that version."""
    namespace = scope(kind, request.list_namespace)
    names = request.targets[0].names
    field_selector = f"metadata.name={names[0]}" if names else request.field_selector
    while True:
        try:
            events = client.watch(
                kind,
                namespace,
                resource_version=version,
                label_selector=request.label_selector,
                field_selector=field_selector,
            )
            try:
                async for event in events:
                    version = str(event.object.get("metadata", {}).get("resourceVersion") or version)
                    if event.type != "BOOKMARK":
                        header = _print_event(request, kind, event.object, printer, header)
            finally:
                closer = getattr(events, "aclose", None)  # ends the HTTP stream on Ctrl-C too
                if closer is not None:
                    await closer()
        except Expired:
            listed = await client.list(
                kind, namespace, label_selector=request.label_selector, field_selector=field_selector
            )
            version = str((listed.get("metadata") or {}).get("resourceVersion") or "")


def _print_event(
    request: GetRequest, kind: Kind, obj: Object, printer: output.TablePrinter, header: bool
) -> bool:
    """Print one watched object; returns whether a table header is still to be printed."""
    if request.fmt in ("yaml", "json"):
        doc = output.document(kind, obj)
        output.echo(f"---\n{output.to_yaml(doc)}" if request.fmt == "yaml" else output.to_json(doc))
    elif request.fmt == "name":
        output.echo(output.object_name(kind, obj))
    else:
        output.echo(printer.render([obj], header=header))
        return False
    return header


# -- describe ------------------------------------------------------------------------------


@click.command()
@click.argument("args", nargs=-1, metavar="KIND [NAME...]")
@namespace_option
@click.option(
    "-l", "--selector", default="", metavar="SELECTOR", help="Describe the objects with these labels."
)
@pass_settings
def describe(settings: Settings, args: tuple[str, ...], namespace: str | None, selector: str) -> None:
    """Show objects in detail, with the events about them."""
    targets = parse_targets(args)
    run(_describe(settings, targets, settings.namespace(namespace), selector))


async def _describe(settings: Settings, targets: list[Target], namespace: str, selector: str) -> None:
    async with settings.client() as client:
        failed = False
        found: list[tuple[Kind, Object]] = []
        for target in targets:
            kind = target.kind
            if not target.names:
                listed = await client.list(kind, scope(kind, namespace), label_selector=selector)
                found += [(kind, obj) for obj in listed.get("items") or []]
            for name in target.names:
                try:
                    found.append((kind, await client.get(kind, name, scope(kind, namespace))))
                except NotFound as err:
                    output.echo_error(err.message)
                    failed = True
        for index, (kind, obj) in enumerate(found):
            events, note = await _events(client, kind, obj)
            if index:
                output.echo()
            output.echo(describe_text(kind, obj, events, note))
        if not found and not failed:
            click.echo(output.no_resources(namespace), err=True)
        if failed:
            raise Failed()


async def _events(client: Client, kind: Kind, obj: Object) -> tuple[list[Object], str]:
    """The Events whose involvedObject is ``obj``, and a note when they cannot be read."""
    event_kind = REGISTRY.by_kind("v1", "Event")
    if event_kind is None:
        return [], ""
    meta = obj["metadata"]
    if kind.namespaced:
        namespace: str | None = meta.get("namespace")
        field_selector = f"involvedObject.name={meta['name']},involvedObject.namespace={namespace}"
    else:
        namespace, field_selector = None, f"involvedObject.name={meta['name']}"
    try:
        listed = await client.list(event_kind, namespace, field_selector=field_selector)
    except ServiceUnavailable:
        raise
    except ApiError as err:
        return [], f"<unavailable: {output.one_line(err.message)}>"
    uid = meta.get("uid")
    return [
        e
        for e in listed.get("items") or []
        if (e.get("involvedObject") or {}).get("kind", kind.kind) == kind.kind
        and (not uid or (e.get("involvedObject") or {}).get("uid", uid) == uid)
    ], ""


# -- delete --------------------------------------------------------------------------------


@click.command()
@click.argument("args", nargs=-1, metavar="KIND NAME... | KIND/NAME...")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    metavar="FILE|DIR|-",
    help="Delete the objects these manifests declare.",
)
@namespace_option
@click.option(
    "-l", "--selector", default="", metavar="SELECTOR", help="Delete the objects with these labels."
)
@click.option(
    "--cascade",
    type=click.Choice(["background", "foreground", "orphan"]),
    default="background",
    show_default=True,
    help="What happens to the objects this one owns.",
)
@click.option("--ignore-not-found", is_flag=True, help="Say nothing about objects that do not exist.")
@pass_settings
def delete(
    settings: Settings,
    args: tuple[str, ...],
    filenames: tuple[str, ...],
    namespace: str | None,
    selector: str,
    cascade: str,
    ignore_not_found: bool,
) -> None:
    """Delete objects by kind and name, by label, or as declared in manifests (last first)."""
    if filenames and args:
        raise click.UsageError("give either KIND NAME... or -f FILE, not both")
    if filenames:
        loaded = [m for path in filenames for m in manifests.load(path)]
        context_namespace = settings.namespace(None)
        # Last declared, first deleted: objects go before the namespace that holds them.
        pairs = [
            (
                m.kind,
                m.object["metadata"].get("name", ""),
                scope(m.kind, namespace or m.object["metadata"].get("namespace") or context_namespace),
            )
            for m in reversed(loaded)
        ]
        run(_delete(settings, pairs, cascade.capitalize(), ignore_not_found))
        return
    targets = parse_targets(args)
    if not selector and not any(t.names for t in targets):
        raise click.UsageError("name the objects to delete, give -l SELECTOR, or -f FILE")
    if selector and any(t.names for t in targets):
        raise click.UsageError("give either object names or -l SELECTOR, not both")
    run(
        _delete_targets(
            settings, targets, settings.namespace(namespace), selector, cascade.capitalize(), ignore_not_found
        )
    )


async def _delete_targets(
    settings: Settings,
    targets: list[Target],
    namespace: str,
    selector: str,
    policy: str,
    ignore_not_found: bool,
) -> None:
    pairs: list[tuple[Kind, str, str | None]] = []
    if selector:
        async with settings.client() as client:
            for target in targets:
                listed = await client.list(
                    target.kind, scope(target.kind, namespace), label_selector=selector
                )
                pairs += [
                    (target.kind, o["metadata"]["name"], scope(target.kind, namespace))
                    for o in listed.get("items") or []
                ]
        if not pairs:
            click.echo(output.no_resources(namespace), err=True)
            return
    else:
        pairs = [(t.kind, name, scope(t.kind, namespace)) for t in targets for name in t.names]
    await _delete(settings, pairs, policy, ignore_not_found)


async def _delete(
    settings: Settings, pairs: list[tuple[Kind, str, str | None]], policy: str, ignore_not_found: bool
) -> None:
    failed = False
    async with settings.client() as client:
        for kind, name, namespace in pairs:
            try:
                await client.delete(kind, name, namespace, propagation_policy=policy)
            except NotFound as err:
                if not ignore_not_found:
                    output.echo_error(err.message)
                    failed = True
                continue
            output.echo(f"{output.object_ref(kind, name)} deleted")
    if failed:
        raise Failed()


# -- apply ---------------------------------------------------------------------------------


@click.command()
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    metavar="FILE|DIR|-",
    help="A manifest file (YAML or JSON, several documents), a folder of them, or - for stdin.",
)
@namespace_option
@pass_settings
def apply(settings: Settings, filenames: tuple[str, ...], namespace: str | None) -> None:
    """Create or update the objects declared in manifests.

    Every manifest is read and checked before anything is sent: one that cannot be
    understood stops the command with nothing applied.
    """
    loaded = [m for path in filenames for m in manifests.load(path)]
    run(_apply(settings, loaded, namespace))


async def _apply(settings: Settings, loaded: list[manifests.Manifest], namespace: str | None) -> None:
    context_namespace = settings.namespace(None)
    failed = False
    async with settings.client() as client:
        for manifest in loaded:
            # -n wins; else the manifest's own namespace; else the kubeconfig context's.
            has_own = bool(manifest.object["metadata"].get("namespace"))
            target_ns = namespace or (None if has_own else context_namespace)
            try:
                action, result = await manifests.apply(client, manifest, target_ns)
            except ServiceUnavailable:
                raise
            except ApiError as err:
                output.echo_error(f"{manifest.where}: {err.message}")
                failed = True
                continue
            output.echo(f"{output.object_name(manifest.kind, result)} {action}")
    if failed:
        raise Failed()
