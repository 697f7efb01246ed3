"""The resource layer: every read and write of an object goes through here.

HTTP handlers and the in-process client both call ``Resources``; it is the one place that
admits (defaults, validates), stamps server-owned metadata (uid, creationTimestamp,
generation, resourceVersion), enforces compare-and-swap, and maps store failures to API
errors. Nothing is written unless every check has passed.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shoal.api import REGISTRY, Kind, Object
from shoal.api.admission import admit
from shoal.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    ServiceUnavailable,
    invalid,
    required,
)
from shoal.api.patch import apply_patch
from shoal.server.codec import decode, encode
from shoal.server.selection import Filter, WatchEvent, name_from_selector, translate
from shoal.store import (
    Compacted,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
)

NAMESPACE = REGISTRY.by_resource("", "v1", "namespaces")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# generateName suffixes use Kubernetes' alphabet: no vowels (no accidental words), no
# look-alike characters.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# The finalizers through which the garbage collector carries out a propagation policy.
ORPHAN_FINALIZER, FOREGROUND_FINALIZER = "orphan", "foregroundDeletion"
PROPAGATION_FINALIZERS = {"Orphan": ORPHAN_FINALIZER, "Foreground": FOREGROUND_FINALIZER}

# Metadata only the server writes; an update keeps the stored values whatever the body says.
_SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")

# Field validation modes of the fieldValidation query parameter.
IGNORE, WARN, STRICT = "Ignore", "Warn", "Strict"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = WARN
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str = ""
    exact: bool = False  # resourceVersionMatch=Exact: read at exactly that revision
    limit: int = 0
    continue_token: str = ""


def parse_revision(value: str, what: str = "resourceVersion") -> int:
    try:
        revision = int(value)
    except ValueError:
        raise BadRequest(f'{what} "{value}" is invalid: must be a non-negative integer') from None
    if revision < 0:
        raise BadRequest(f'{what} "{value}" is invalid: must be a non-negative integer')
    return revision


class Resources:
    """Typed access to the objects in one store, with Kubernetes semantics."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def bootstrap(self) -> None:
        """Create the namespaces that exist from the start, if they do not yet."""
        assert NAMESPACE is not None
        for name in INITIAL_NAMESPACES:
            if await self.store.get(NAMESPACE.key(None, name)) is None:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                with contextlib.suppress(AlreadyExists):
                    await self.create(NAMESPACE, None, body)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Object:
        return (await self._read(kind, namespace, name))[1]

    async def _read(self, kind: Kind, namespace: str | None, name: str) -> tuple[KeyValue, Object]:
        """The stored value of an object and the object itself; NotFound when absent."""
        kv = await self._store_call(self.store.get(kind.key(namespace, name)))
        if kv is None:
            raise _not_found(kind, name)
        return kv, decode(kv)

    async def list(self, kind: Kind, namespace: str | None, options: ListOptions = ListOptions()) -> Object:
        """A ``<Kind>List`` of the matching objects."""
        flt = Filter(kind, options.label_selector, options.field_selector)
        revision: int | None = None
        start_key = ""
        if options.continue_token:
            revision, start_key = _decode_continue(options.continue_token)
        elif options.exact and options.resource_version:
            revision = parse_revision(options.resource_version)
        prefix = kind.key_prefix(namespace)
        narrowed = name_from_selector(flt)
        try:
            result = await self.store.list(prefix, revision)
        except Compacted as err:
            raise Expired(f"too old resource version: {err.requested} ({err.compacted})") from None
        except StoreError as err:
            raise ServiceUnavailable(f"the store is unavailable: {err}") from None
        items: list[Object] = []
        next_token = ""
        for kv in result.items:
            if start_key and kv.key < start_key:
                continue
            if narrowed and not kv.key.endswith("/" + narrowed):
                continue
            obj = decode(kv)
            if flt.empty or flt.matches(obj):
                if options.limit and len(items) == options.limit:
                    next_token = _encode_continue(result.revision, kv.key)
                    break
                items.append(obj)
        metadata: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if next_token:
            metadata["continue"] = next_token
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": metadata,
            "items": items,
        }

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, kind: Kind, namespace: str | None, body: Object, options: WriteOptions | None = None
    ) -> Object:
        options = options or WriteOptions()
        obj = self._admit(kind, namespace, _for_create(kind, body), options, name_hint=None)
        meta = obj["metadata"]
        if kind.namespaced:
            await self._require_namespace(namespace or "")
        generated = not meta.get("name")
        for _attempt in range(8 if generated else 1):
            if generated:
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice(_SUFFIX_ALPHABET) for _ in range(5)
                )
            if options.dry_run:
                if await self._store_call(self.store.get(kind.key(namespace, meta["name"]))) is not None:
                    raise _already_exists(kind, meta["name"])
                return obj
            try:
                kv = await self._store_call(self.store.create(kind.key(namespace, meta["name"]), encode(obj)))
            except KeyExists:
                if generated:
                    continue
                raise _already_exists(kind, meta["name"]) from None
            meta["resourceVersion"] = str(kv.mod_revision)
            return obj
        raise _already_exists(kind, meta["name"])

    async def update(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        body: Object,
        options: WriteOptions | None = None,
        subresource: str = "",
    ) -> Object:
        """Replace an object (PUT). A resourceVersion in the body makes it compare-and-swap."""
        options = options or WriteOptions()
        if not isinstance(body, dict):
            raise BadRequest(f"the body of a {kind.kind} must be a JSON object")
        meta = body.get("metadata")
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        expected = parse_revision(str(rv), "metadata.resourceVersion") if rv else None
        old_kv = await self._store_call(self.store.get(kind.key(namespace, name)))
        if old_kv is None:
            raise _not_found(kind, name)
        if expected is not None and expected != old_kv.mod_revision:
            raise _conflict(kind, name)
        return await self._write_update(kind, namespace, name, old_kv, body, options, subresource)

    async def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: bytes,
        content_type: str,
        options: WriteOptions | None = None,
        subresource: str = "",
    ) -> Object:
        """Apply a patch to the current object; retried when a concurrent write wins."""
        options = options or WriteOptions()
        for _attempt in range(16):
            old_kv, current = await self._read(kind, namespace, name)
            patched = apply_patch(current, patch, content_type, kind.schema)
            if not isinstance(patched, dict):
                raise BadRequest(f'{kind.resource} "{name}": the patch must produce a JSON object')
            pinned = (patched.get("metadata") or {}).get("resourceVersion")
            if pinned and str(pinned) != str(old_kv.mod_revision):
                raise _conflict(kind, name)
            try:
                return await self._write_update(kind, namespace, name, old_kv, patched, options, subresource)
            except Conflict:
                if pinned:
                    raise
        raise _conflict(kind, name)

    async def delete(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        *,
        expected_uid: str = "",
        expected_revision: str = "",
        dry_run: bool = False,
        propagation_policy: str = "",
    ) -> Object:
        """Delete an object, or mark it for deletion while finalizers remain.

        Dependents are the garbage collector's (a controller): with the Background policy
        (the default) the object goes now and the collector deletes its dependents after;
        Orphan and Foreground become the ``orphan`` and ``foregroundDeletion`` finalizers,
        which the collector removes once it has released or deleted the dependents.
        """
        policy_finalizer = PROPAGATION_FINALIZERS.get(propagation_policy)
        key = kind.key(namespace, name)
        for _attempt in range(16):
            kv, obj = await self._read(kind, namespace, name)
            meta = obj["metadata"]
            if expected_uid and meta.get("uid") != expected_uid:
                raise _conflict(kind, name, f"the UID in the precondition ({expected_uid}) does not match")
            if expected_revision and expected_revision != meta["resourceVersion"]:
                raise _conflict(kind, name)
            if kind is NAMESPACE and name in ("default", "kube-system"):
                raise Forbidden(
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    name=name,
                    kind=kind.plural,
                )
            if dry_run:
                return obj
            if policy_finalizer and not meta.get("deletionTimestamp"):
                finalizers = [
                    f for f in meta.get("finalizers") or [] if f not in PROPAGATION_FINALIZERS.values()
                ]
                meta["finalizers"] = [*finalizers, policy_finalizer]
            try:
                if meta.get("finalizers"):
                    if not meta.get("deletionTimestamp"):
                        meta["deletionTimestamp"] = now_rfc3339()
                        meta["deletionGracePeriodSeconds"] = 0
                        new_kv = await self.store.update(key, encode(obj), kv.mod_revision)
                        meta["resourceVersion"] = str(new_kv.mod_revision)
                    return obj
                if kind is NAMESPACE:
                    await self._empty_namespace(name)
                gone = await self.store.delete(key, kv.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue
            except StoreError as err:
                raise ServiceUnavailable(f"the store is unavailable: {err}") from None
            meta["resourceVersion"] = str(gone.mod_revision)
            return obj
        raise _conflict(kind, name)

    async def bind(self, kind: Kind, namespace: str | None, name: str, binding: Any) -> Object:
        """Assign a Pod to a node (the ``binding`` subresource). Only an unassigned Pod that
        is not being deleted can be bound; the rest of its spec is left as it is."""
        if not isinstance(binding, dict):
            raise BadRequest("the body of a binding must be a Binding object")
        target = binding.get("target")
        node = target.get("name") if isinstance(target, dict) else None
        if not isinstance(node, str) or not node:
            raise Invalid.for_object("Binding", "", name, [required("target.name")])
        if isinstance(target, dict) and target.get("kind", "Node") != "Node":
            raise Invalid.for_object(
                "Binding", "", name, [invalid("target.kind", target.get("kind"), "must be Node")]
            )
        key = kind.key(namespace, name)
        for _attempt in range(16):
            kv, obj = await self._read(kind, namespace, name)
            assigned = (obj.get("spec") or {}).get("nodeName")
            if assigned:
                raise _conflict(kind, name, f"pod {name} is already assigned to node {assigned!r}")
            if obj["metadata"].get("deletionTimestamp"):
                raise _conflict(kind, name, f"pod {name} is being deleted, cannot be assigned to a host")
            obj.setdefault("spec", {})["nodeName"] = node
            # The binding also says so in the status, in the same write (as Kubernetes'
            # binding does): no second write, and no writer can see the pod bound but not
            # scheduled.
            status = obj.setdefault("status", {})
            others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()},
                *others,
            ]
            try:
                new_kv = await self.store.update(key, encode(obj), kv.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue
            except StoreError as err:
                raise ServiceUnavailable(f"the store is unavailable: {err}") from None
            obj["metadata"]["resourceVersion"] = str(new_kv.mod_revision)
            return obj
        raise _conflict(kind, name)

    # -- watch ---------------------------------------------------------------------------

    async def watch(
        self, kind: Kind, namespace: str | None, options: ListOptions = ListOptions()
    ) -> AsyncGenerator[WatchEvent, None]:
        """Changes as watch events. Without a resourceVersion (or with "0") the current
        objects come first as ADDED events, as Kubernetes does."""
        flt = Filter(kind, options.label_selector, options.field_selector)
        prefix = kind.key_prefix(namespace)
        if options.resource_version in ("", "0"):
            listed = await self._store_call(self.store.list(prefix))
            after = listed.revision
            initial = [decode(kv) for kv in listed.items]
        else:
            after = parse_revision(options.resource_version)
            initial = []
            current = await self._store_call(self.store.current_revision())
            if after > current:
                # Revisions only grow, so this version came from another store: one this
                # cluster was restored from. Waiting would skip every change up to it.
                raise Expired(
                    f"resourceVersion {after} is newer than the store's revision {current} "
                    "(was the cluster restored from a backup?): list again"
                )
        for obj in initial:
            if flt.empty or flt.matches(obj):
                yield WatchEvent("ADDED", obj)
        events = self.store.watch(prefix, after)
        try:
            async for event in events:
                translated = translate(event, flt)
                if translated is not None:
                    yield translated
        except Compacted as err:
            raise Expired(f"too old resource version: {err.requested} ({err.compacted})") from None
        except StoreClosed as err:
            # A watcher that fell too far behind (or a store shutting down): the client must
            # list again and watch from there, which is what 410 Expired tells it.
            raise Expired(
                f"the watch ended: {err}; list again and watch from the list's resourceVersion"
            ) from None
        except StoreError as err:
            raise ServiceUnavailable(f"the store is unavailable: {err}") from None
        finally:
            await events.aclose()

    # -- internals -----------------------------------------------------------------------

    def _admit(
        self, kind: Kind, namespace: str | None, body: Any, options: WriteOptions, name_hint: str | None
    ) -> Object:
        if not isinstance(body, dict):
            raise BadRequest(f"the body of a {kind.kind} must be a JSON object")
        body_ns = (
            (body.get("metadata") or {}).get("namespace") if isinstance(body.get("metadata"), dict) else None
        )
        if kind.namespaced and body_ns and namespace and body_ns != namespace:
            raise BadRequest(
                f"the namespace of the provided object ({body_ns}) does not match the namespace sent on "
                f"the request ({namespace})"
            )
        obj, errors, unknown = admit(kind, _with_namespace(kind, body, namespace))
        meta = obj.get("metadata")
        name = name_hint or ""
        if not name and isinstance(meta, dict):
            candidate = meta.get("name") or meta.get("generateName") or ""
            name = candidate if isinstance(candidate, str) else ""
        if unknown:
            if options.field_validation == STRICT:
                errors = [
                    *errors,
                    *(FieldError(p, "Unknown field", "field not declared in schema") for p in unknown),
                ]
            elif options.field_validation == WARN:
                options.warnings.extend(f'unknown field "{p}"' for p in unknown)
        if errors:
            raise Invalid.for_object(kind.kind, kind.group, name, errors)
        return obj

    async def _write_update(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        old_kv: KeyValue,
        body: Object,
        options: WriteOptions,
        subresource: str,
    ) -> Object:
        old = decode(old_kv)
        raw_meta = body.get("metadata")
        body_meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise BadRequest(
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})"
            )
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in body:
                merged["status"] = body["status"]
            else:
                merged.pop("status", None)
            body = merged
        else:
            kept = {k: old["metadata"][k] for k in _SERVER_OWNED if k in old["metadata"]}
            body = {**body, "metadata": {**body_meta, "name": name, **kept}}
            if kind.has_status:
                if "status" in old:
                    body["status"] = old["status"]
                else:
                    body.pop("status", None)
        new = self._admit(kind, namespace, body, options, name_hint=name)
        errors: list[FieldError] = []
        if kind.validate_update is not None:
            errors = kind.validate_update(new, old)
        if errors:
            raise Invalid.for_object(kind.kind, kind.group, name, errors)
        meta, old_meta = new["metadata"], old["metadata"]
        for owned in _SERVER_OWNED:
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        meta["generation"] = old_meta.get("generation", 1) + (1 if _spec_changed(new, old) else 0)
        meta.pop("resourceVersion", None)
        if options.dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return new
        key = kind.key(namespace, name)
        try:
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                # The last finalizer was removed from an object being deleted: it goes now.
                gone = await self.store.delete(key, old_kv.mod_revision)
                meta["resourceVersion"] = str(gone.mod_revision)
                return new
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise Invalid.for_object(
                        kind.kind,
                        kind.group,
                        name,
                        [
                            invalid(
                                "metadata.finalizers",
                                sorted(added),
                                "no new finalizers can be added if the object is being deleted",
                            )
                        ],
                    )
            kv = await self.store.update(key, encode(new), old_kv.mod_revision)
        except RevisionMismatch:
            raise _conflict(kind, name) from None
        except KeyNotFound:
            raise _not_found(kind, name) from None
        except StoreError as err:
            raise ServiceUnavailable(f"the store is unavailable: {err}") from None
        meta["resourceVersion"] = str(kv.mod_revision)
        return new

    async def _require_namespace(self, namespace: str) -> None:
        assert NAMESPACE is not None
        kv = await self._store_call(self.store.get(NAMESPACE.key(None, namespace)))
        if kv is None:
            raise NotFound(f'namespaces "{namespace}" not found', name=namespace, kind="namespaces")
        if decode(kv)["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                name=namespace,
                kind="namespaces",
            )

    async def _empty_namespace(self, namespace: str) -> None:
        """Delete what a namespace holds. Stands in for the namespace controller, which takes
        this over with the garbage collector."""
        for kind in REGISTRY.kinds:
            if not kind.namespaced:
                continue
            listed = await self.store.list(kind.key_prefix(namespace))
            for kv in listed.items:
                with contextlib.suppress(KeyNotFound):
                    await self.store.delete(kv.key)

    async def _store_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (KeyExists, KeyNotFound, RevisionMismatch, Compacted):
            raise
        except StoreError as err:
            raise ServiceUnavailable(f"the store is unavailable: {err}") from None


def _for_create(kind: Kind, body: Any) -> Any:
    """The body with the metadata the server owns set before admission (defaults such as a
    Job's generated selector derive from the uid) and status reset where the kind wants."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return body
    server_owned = ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds")
    meta = {k: v for k, v in body["metadata"].items() if k not in server_owned}
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
    out = {**body, "metadata": meta}
    if kind.has_status and not kind.keeps_status_on_create:
        out.pop("status", None)
    return out


def _with_namespace(kind: Kind, body: Object, namespace: str | None) -> Object:
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        return body
    if kind.namespaced:
        if namespace and meta.get("namespace") != namespace:
            return {**body, "metadata": {**meta, "namespace": namespace}}
    elif "namespace" in meta:
        rest = dict(meta)
        rest.pop("namespace")
        return {**body, "metadata": rest}
    return body


def _spec_changed(new: Object, old: Object) -> bool:
    ignored = ("metadata", "status")
    return {k: v for k, v in new.items() if k not in ignored} != {
        k: v for k, v in old.items() if k not in ignored
    }


def _encode_continue(revision: int, key: str) -> str:
    import base64

    return base64.urlsafe_b64encode(orjson.dumps({"rv": revision, "start": key})).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    import base64

    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest(f'continue token "{token[:40]}" is invalid') from None


def _not_found(kind: Kind, name: str) -> NotFound:
    return NotFound(f'{kind.resource} "{name}" not found', name=name, group=kind.group, kind=kind.plural)


def _already_exists(kind: Kind, name: str) -> AlreadyExists:
    return AlreadyExists(
        f'{kind.resource} "{name}" already exists', name=name, group=kind.group, kind=kind.plural
    )


def _conflict(kind: Kind, name: str, why: str = "") -> Conflict:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return Conflict(
        f'Operation cannot be fulfilled on {kind.resource} "{name}": {why}',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )


__all__ = [
    "FOREGROUND_FINALIZER",
    "IGNORE",
    "ORPHAN_FINALIZER",
    "STRICT",
    "WARN",
    "ListOptions",
    "Resources",
    "WriteOptions",
]
