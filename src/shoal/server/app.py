"""The HTTP API: Kubernetes' URL layout and verbs over ``Resources``.

An ASGI application (Starlette routing, served by uvicorn). Every response to a failed
request is a ``Status`` object; client input never produces a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    RequestTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from shoal.security import join as node_join
from shoal.security import pki
from shoal.security.authn import USER_SCOPE_KEY
from shoal.security.escalation import (
    authorize_binding_write,
    authorize_role_write,
    escalation_forbidden_message,
)
from shoal.security.identity import AUTHENTICATED_GROUP, UserInfo
from shoal.security.rbac import GROUP as RBAC_GROUP
from shoal.security.rbac import RBACAuthorizer
from shoal.server import backup, discovery, logs, metrics, openapi, podexec, scale
from shoal.server.resources import (
    IGNORE,
    STRICT,
    WARN,
    ListOptions,
    Resources,
    WriteOptions,
)
from shoal.server.routing import Target, resolve
from shoal.server.selection import Filter, WatchEvent
from shoal.server.table import INCLUDE_METADATA, INCLUDE_NONE, INCLUDE_OBJECT, table, wants_table

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
JSON = "application/json"

Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def error_response(err: ApiError) -> Response:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
    return json_response(err.to_status(), err.code, headers)


def guarded(handler: Handler) -> Handler:
    """Turn every failure into a Status: API errors as they are, anything else as a 500
    that is logged here (a bug, never the client's doing)."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err)
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return error_response(InternalError("an internal error occurred; see the server log"))

    return run


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is {declared} bytes; the limit is {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge(f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(body: bytes, content_type: str) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if not body.strip():
        raise BadRequest("the request has no body; an object is required")
    if media in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            decoded = yaml.safe_load(body)
        except yaml.YAMLError as err:
            raise BadRequest(f"the request body is not valid YAML: {err}") from None
        try:
            # Through JSON and back: YAML timestamps become the strings a JSON client would
            # send, and what JSON cannot carry (unpaired surrogates, non-string keys, binary,
            # sets) is refused here rather than deep inside the server.
            return orjson.loads(orjson.dumps(decoded))
        except (TypeError, orjson.JSONDecodeError) as err:
            raise BadRequest(f"the request body cannot be represented as JSON: {err}") from None
    if media.endswith("protobuf") or media == "application/cbor":
        raise UnsupportedMediaType(f"{media} bodies are not supported; send application/json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the request body is not valid JSON: {err}") from None


def check_accept(request: Request) -> None:
    accept = request.headers.get("accept", "")
    if not accept:
        return
    for media in accept.split(","):
        base = media.split(";")[0].strip().lower()
        if base in (JSON, "*/*", "application/*", "application/json-seq") or base.endswith("+json"):
            return
        if base in ("application/yaml",):
            return
    raise NotAcceptable(f"only application/json responses are available, not {accept}")


class Api:
    """Request handlers for one server; ``resources`` is where objects live."""

    def __init__(self, resources: Resources, server_address: str, rbac: RBACAuthorizer | None = None) -> None:
        self.resources = resources
        self.server_address = server_address
        self.rbac = rbac  # for escalation checks on roles and bindings (None: not checked)

    def _check_escalation(self, request: Request, kind: Kind, obj: Object) -> None:
        """Refuse a Role, ClusterRole or binding that grants more than its writer holds, as
        Kubernetes does; ``obj`` is the object as it would be stored."""
        user = request.scope.get(USER_SCOPE_KEY)
        if self.rbac is None or kind.group != RBAC_GROUP or not isinstance(user, UserInfo):
            return
        if kind.resource in ("roles", "clusterroles"):
            decision = authorize_role_write(user, obj, self.rbac)
        else:
            decision = authorize_binding_write(user, obj, self.rbac)
        if not decision.allowed:
            raise Forbidden(escalation_forbidden_message({**obj, "kind": kind.kind}, decision.reason))

    # -- discovery -----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    async def version(self, request: Request) -> Response:
        return json_response(discovery.version())

    async def core(self, request: Request) -> Response:
        return json_response(discovery.core_versions(self.server_address))

    async def core_v1(self, request: Request) -> Response:
        return json_response(discovery.resource_list(REGISTRY, "", "v1"))

    async def groups(self, request: Request) -> Response:
        listed = discovery.group_list(REGISTRY)
        listed["groups"].append(metrics.group())
        return json_response(listed)

    async def group(self, request: Request) -> Response:
        name = request.path_params["group"]
        if name == metrics.GROUP:
            return json_response(metrics.group())
        if name not in REGISTRY.groups() or not name:
            raise NotFound(f'the server could not find the requested resource (API group "{name}")')
        return json_response(discovery.group(REGISTRY, name))

    async def group_version(self, request: Request) -> Response:
        group, version = request.path_params["group"], request.path_params["version"]
        if (group, version) == (metrics.GROUP, metrics.VERSION):
            return json_response(metrics.resource_list())
        if version not in REGISTRY.groups().get(group, []) or not group:
            raise NotFound(f"the server could not find the requested resource ({group}/{version})")
        return json_response(discovery.resource_list(REGISTRY, group, version))

    async def join(self, request: Request) -> Response:
        """A machine asks to join: ``security.join.answer`` checks its token's secret and signs
        its node certificate."""
        body = decode_body(await read_body(request), request.headers.get("content-type", JSON))
        return json_response(await node_join.answer(self.resources, body))

    async def renew(self, request: Request) -> Response:
        """A node renews its certificate, authenticated by the current one (``agent.certificates``)."""
        user = request.scope.get(USER_SCOPE_KEY)
        if not isinstance(user, UserInfo):
            raise Unauthorized("renewing a node certificate needs the node's current certificate")
        body = decode_body(await read_body(request), request.headers.get("content-type", JSON))
        identity = pki.Identity(user.name, tuple(g for g in user.groups if g != AUTHENTICATED_GROUP))
        return json_response(await node_join.answer_renewal(self.resources, identity, body))

    async def managers(self, request: Request) -> Response:
        """The managers and their URLs (``manager.registry``): agents fail over along it."""
        from shoal.client.local import LocalClient  # the in-process client is built on this server
        from shoal.manager import registry

        listed = await registry.managers(LocalClient(self.resources))
        return json_response(
            {
                "apiVersion": "shoal.io/v1",
                "kind": "ManagerList",
                "managers": [{"name": m.name, "url": m.url, "reachable": m.reachable()} for m in listed],
            }
        )

    async def unlock(self, request: Request) -> Response:
        """``shoal unlock``: the operator's key opens the sealed keyring (autolock)."""
        from shoal.security.keys import unlock_request

        return json_response(await unlock_request(self.resources.store, await read_body(request)))

    async def openapi_index(self, request: Request) -> Response:
        return json_response(openapi.index(REGISTRY))

    async def openapi_document(self, request: Request) -> Response:
        path = request.path_params["path"]
        doc = openapi.document(REGISTRY, path)
        if doc is None:
            raise NotFound(f"no OpenAPI document for {path}")
        return Response(doc, media_type=JSON)

    async def pod_exec(self, websocket: WebSocket) -> None:
        await podexec.pod_exec(self.resources, websocket)

    # -- resources -----------------------------------------------------------------------

    async def core_resource(self, request: Request) -> Response:
        return await self._resource(request, "", "v1", request.path_params["path"])

    async def group_resource(self, request: Request) -> Response:
        params = request.path_params
        if (params["group"], params["version"]) == (metrics.GROUP, metrics.VERSION):
            return await self._metrics(request, params["path"].split("/"))
        return await self._resource(request, params["group"], params["version"], params["path"])

    async def _metrics(self, request: Request, parts: list[str]) -> Response:
        """``metrics.k8s.io/v1beta1``: pods (all, a namespace's, one) and nodes (all, one)."""
        if request.method != "GET":
            raise MethodNotAllowed(f"the metrics API is read-only: {request.method} is not allowed")
        match parts:
            case ["pods"]:
                body = await metrics.pod_metrics(self.resources, request, None, None)
            case ["namespaces", namespace, "pods"]:
                body = await metrics.pod_metrics(self.resources, request, namespace, None)
            case ["namespaces", namespace, "pods", name]:
                body = await metrics.pod_metrics(self.resources, request, namespace, name)
            case ["nodes"]:
                body = await metrics.node_metrics(self.resources, request, None)
            case ["nodes", name]:
                body = await metrics.node_metrics(self.resources, request, name)
            case _:
                raise NotFound(f"the server could not find the requested resource ({metrics.GROUP_VERSION})")
        return json_response(body)

    async def _resource(self, request: Request, group: str, version: str, path: str) -> Response:
        target = resolve(group, version, path.split("/"))
        method = request.method
        query = request.query_params
        if target.kind.namespaced and target.namespace is None and target.name:
            raise NotFound(
                f"{target.kind.resource} is namespaced: its objects live under /namespaces/NAMESPACE/"
            )
        if target.subresource == "log":
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not supported on the log subresource")
            return await logs.pod_log(self.resources, request, target.namespace or "", target.name)
        if target.subresource == "exec":
            if method not in ("GET", "POST"):
                raise MethodNotAllowed(f"{method} is not supported on the exec subresource")
            await podexec.check_plain_request(self.resources, target.namespace or "", target.name, query)
        if method == "GET":
            check_accept(request)
            if target.legacy_watch or query.get("watch") in ("1", "true", "True"):
                if target.name:
                    return self._watch(request, target, name=target.name)
                return self._watch(request, target)
            if not target.name:
                return await self._list(request, target)
            return await self._get(request, target)
        if method == "POST" and not target.name:
            return await self._create(request, target)
        if method == "POST" and target.subresource == "binding":
            body = decode_body(await read_body(request), request.headers.get("content-type", JSON))
            obj = await self.resources.bind(target.kind, target.namespace, target.name, body)
            return json_response(success_status(target.kind, obj), 201)
        if method == "PUT" and target.name:
            return await self._update(request, target)
        if method == "PATCH" and target.name:
            return await self._patch(request, target)
        if method == "DELETE":
            if target.name:
                return await self._delete(request, target)
            return await self._delete_collection(request, target)
        raise MethodNotAllowed(f"{method} is not supported on {request.url.path}")

    async def _get(self, request: Request, target: Target) -> Response:
        if target.subresource == "scale":
            return json_response(
                await scale.get_scale(self.resources, target.kind, target.namespace, target.name)
            )
        obj = await self.resources.get(target.kind, target.namespace, target.name)
        return self._object_response(request, target.kind, obj)

    async def _list(self, request: Request, target: Target) -> Response:
        listed = await self.resources.list(target.kind, target.namespace, list_options(request))
        if wants_table(request.headers.get("accept", "")):
            return json_response(
                table(target.kind, listed["items"], listed["metadata"], include_object(request))
            )
        return json_response(listed)

    async def _create(self, request: Request, target: Target) -> Response:
        body = decode_body(await read_body(request), request.headers.get("content-type", JSON))
        options = write_options(request)
        if isinstance(body, dict):
            self._check_escalation(request, target.kind, body)
        obj = await self.resources.create(target.kind, target.namespace, body, options)
        return self._object_response(request, target.kind, obj, 201, options)

    async def _update(self, request: Request, target: Target) -> Response:
        body = decode_body(await read_body(request), request.headers.get("content-type", JSON))
        options = write_options(request)
        if target.subresource == "scale":
            result = await scale.update_scale(
                self.resources, target.kind, target.namespace, target.name, body, options
            )
            return json_response(result)
        if isinstance(body, dict):
            self._check_escalation(request, target.kind, body)
        obj = await self.resources.update(
            target.kind, target.namespace, target.name, body, options, target.subresource
        )
        return self._object_response(request, target.kind, obj, 200, options)

    async def _patch(self, request: Request, target: Target) -> Response:
        body = await read_body(request)
        content_type = request.headers.get("content-type", "")
        options = write_options(request)
        if target.subresource == "scale":
            result = await scale.patch_scale(
                self.resources, target.kind, target.namespace, target.name, body, content_type, options
            )
            return json_response(result)
        if self.rbac is not None and target.kind.group == RBAC_GROUP and not target.subresource:
            # The object after the patch is what is checked: a dry run makes it.
            dry = WriteOptions(dry_run=True, field_validation=options.field_validation)
            merged = await self.resources.patch(
                target.kind, target.namespace, target.name, body, content_type, dry, target.subresource
            )
            self._check_escalation(request, target.kind, merged)
        obj = await self.resources.patch(
            target.kind, target.namespace, target.name, body, content_type, options, target.subresource
        )
        return self._object_response(request, target.kind, obj, 200, options)

    async def _delete(self, request: Request, target: Target) -> Response:
        if target.subresource:
            raise MethodNotAllowed(f"DELETE is not supported on the {target.subresource} subresource")
        opts = await delete_options(request)
        obj = await self.resources.delete(
            target.kind,
            target.namespace,
            target.name,
            expected_uid=opts.get("uid", ""),
            expected_revision=opts.get("resourceVersion", ""),
            dry_run=opts.get("dryRun", False),
            propagation_policy=opts.get("propagationPolicy", ""),
        )
        if obj["metadata"].get("deletionTimestamp") or opts.get("dryRun"):
            return self._object_response(request, target.kind, obj, 200)
        return json_response(success_status(target.kind, obj))

    async def _delete_collection(self, request: Request, target: Target) -> Response:
        opts = await delete_options(request)
        listed = await self.resources.list(target.kind, target.namespace, list_options(request))
        for obj in listed["items"]:
            meta = obj["metadata"]
            with contextlib.suppress(NotFound):
                await self.resources.delete(
                    target.kind, meta.get("namespace"), meta["name"], dry_run=opts.get("dryRun", False)
                )
        return json_response(listed)

    def _watch(self, request: Request, target: Target, name: str = "") -> Response:
        options = list_options(request)
        if name:
            selector = f"metadata.name={name}"
            options = ListOptions(
                options.label_selector,
                f"{options.field_selector},{selector}" if options.field_selector else selector,
                options.resource_version,
            )
        timeout = parse_int(request.query_params.get("timeoutSeconds", "0"), "timeoutSeconds")
        as_table = wants_table(request.headers.get("accept", ""))
        include = include_object(request)
        kind = target.kind
        # Compile the selectors now so that a bad one is a 400, not a broken stream.
        Filter(kind, options.label_selector, options.field_selector)
        events = self.resources.watch(kind, target.namespace, options)

        async def lines() -> AsyncIterator[bytes]:
            try:
                async with asyncio.timeout(timeout or None):
                    async for event in events:
                        yield encode_event(kind, event, as_table, include)
            except TimeoutError:
                return
            except ApiError as err:
                yield orjson.dumps({"type": "ERROR", "object": err.to_status()}) + b"\n"
            finally:
                await events.aclose()

        return StreamingResponse(lines(), media_type=JSON, headers={"Transfer-Encoding": "chunked"})

    def _object_response(
        self,
        request: Request,
        kind: Kind,
        obj: Object,
        status: int = 200,
        options: WriteOptions | None = None,
    ) -> Response:
        headers = None
        if options is not None and options.warnings:
            headers = {"Warning": ", ".join(f'299 - "{header_safe(w)}"' for w in options.warnings[:20])}
        if wants_table(request.headers.get("accept", "")):
            metadata = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            return json_response(table(kind, [obj], metadata, include_object(request)), status, headers)
        return json_response(obj, status, headers)


def encode_event(kind: Kind, event: WatchEvent, as_table: bool, include: str) -> bytes:
    obj: Object = event.object
    if as_table:
        obj = table(kind, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, include)
    return orjson.dumps({"type": event.type, "object": obj}) + b"\n"


def header_safe(text: str) -> str:
    """Text fit for an HTTP header value: printable ASCII, quotes escaped."""
    ascii_text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else "?" for c in ascii_text).replace('"', '\\"')


def success_status(kind: Kind, obj: Object) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta.get("name", ""),
            "group": kind.group,
            "kind": kind.plural,
            "uid": meta.get("uid", ""),
        },
    }


def parse_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f'{name} "{value}" is invalid: must be an integer') from None
    if number < 0:
        raise BadRequest(f'{name} "{value}" is invalid: must not be negative')
    return number


def list_options(request: Request) -> ListOptions:
    q = request.query_params
    match = q.get("resourceVersionMatch", "")
    if match not in ("", "Exact", "NotOlderThan"):
        raise BadRequest(f'resourceVersionMatch "{match}" is invalid: use Exact or NotOlderThan')
    rv = q.get("resourceVersion", "")
    if rv and rv != "0":
        parse_int(rv, "resourceVersion")
    return ListOptions(
        label_selector=q.get("labelSelector", ""),
        field_selector=q.get("fieldSelector", ""),
        resource_version=rv,
        exact=match == "Exact",
        limit=parse_int(q.get("limit", "0") or "0", "limit"),
        continue_token=q.get("continue", ""),
    )


def write_options(request: Request) -> WriteOptions:
    q = request.query_params
    dry_run = q.get("dryRun", "")
    if dry_run not in ("", "All"):
        raise BadRequest(f'dryRun "{dry_run}" is invalid: the only supported value is All')
    validation = q.get("fieldValidation", "") or WARN
    if validation not in (IGNORE, WARN, STRICT):
        raise BadRequest(f'fieldValidation "{validation}" is invalid: use Ignore, Warn or Strict')
    return WriteOptions(dry_run=dry_run == "All", field_validation=validation)


def include_object(request: Request) -> str:
    value = request.query_params.get("includeObject", INCLUDE_METADATA) or INCLUDE_METADATA
    if value not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise BadRequest(f'includeObject "{value}" is invalid: use None, Metadata or Object')
    return value


async def delete_options(request: Request) -> dict[str, Any]:
    """DeleteOptions from the body (kubectl sends them there) and the query string."""
    q = request.query_params
    raw = await read_body(request)
    body: Any = {}
    if raw.strip():
        body = decode_body(raw, request.headers.get("content-type", JSON))
        if not isinstance(body, dict):
            raise BadRequest("the body of a delete request must be a DeleteOptions object")
    policy = q.get("propagationPolicy") or body.get("propagationPolicy") or ""
    if policy not in ("", "Orphan", "Background", "Foreground"):
        raise BadRequest(f'propagationPolicy "{policy}" is invalid: use Orphan, Background or Foreground')
    preconditions = body.get("preconditions") or {}
    if not isinstance(preconditions, dict):
        raise BadRequest("DeleteOptions.preconditions must be an object")
    dry = q.get("dryRun") or body.get("dryRun") or ""
    if isinstance(dry, list):
        dry = dry[0] if dry else ""
    if dry not in ("", "All"):
        raise BadRequest(f'dryRun "{dry}" is invalid: the only supported value is All')
    return {
        "propagationPolicy": policy,
        "uid": str(preconditions.get("uid") or ""),
        "resourceVersion": str(preconditions.get("resourceVersion") or ""),
        "dryRun": dry == "All",
    }


def create_app(
    resources: Resources, server_address: str = "127.0.0.1:6443", rbac: RBACAuthorizer | None = None
) -> Starlette:
    """The API as an ASGI app; with ``rbac``, writes of roles and bindings are checked for
    escalation (authentication and the other checks are ``server.guard``'s)."""
    api = Api(resources, server_address, rbac)
    podexec.quiet_denial_noise()
    verbs = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/healthz", guarded(api.healthz)),
        Route("/livez", guarded(api.healthz)),
        Route("/readyz", guarded(api.healthz)),
        Route("/version", guarded(api.version)),
        Route("/api", guarded(api.core)),
        Route("/api/v1", guarded(api.core_v1)),
        Route("/apis", guarded(api.groups)),
        Route("/openapi/v3", guarded(api.openapi_index)),
        Route("/shoal/v1/join", guarded(api.join), methods=["POST"]),
        Route("/shoal/v1/renew", guarded(api.renew), methods=["POST"]),
        Route("/shoal/v1/unlock", guarded(api.unlock), methods=["POST"]),
        Route("/shoal/v1/backup", guarded(backup.endpoint(resources)), methods=["GET"]),
        Route("/shoal/v1/managers", guarded(api.managers), methods=["GET"]),
        Route("/openapi/v3/{path:path}", guarded(api.openapi_document)),
        Route("/api/v1/{path:path}", guarded(api.core_resource), methods=verbs),
        WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", api.pod_exec),
        Route("/apis/{group}", guarded(api.group)),
        Route("/apis/{group}/{version}", guarded(api.group_version)),
        Route("/apis/{group}/{version}/{path:path}", guarded(api.group_resource), methods=verbs),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(NotFound("the server could not find the requested resource"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(MethodNotAllowed(f"{request.method} is not supported on {request.url.path}"))

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
