"""What a request asks, in the terms authorizers use (Kubernetes' RequestInfoResolver): verb,
API group, resource, subresource, namespace and name from the method and path alone, before
any routing, so that a refusal never depends on whether the object exists.

- ``/api/v1/...`` and ``/apis/{group}/{version}/...`` are resource requests; every other path
  (``/healthz``, ``/version``, ``/api``, ``/apis``, ``/openapi/v3``...) is a non-resource request
  whose verb is the HTTP method in lower case.
- Verbs: GET is ``get`` on a name, ``list`` on a collection, ``watch`` with ``watch=1|true`` or
  the legacy ``/watch/`` prefix; POST ``create``; PUT ``update``; PATCH ``patch``; DELETE
  ``delete`` on a name, ``deletecollection`` on a collection.
- ``namespaces/{name}`` is the Namespace ``name`` and also carries it as its namespace, as
  Kubernetes does; ``pods/{name}/exec`` is ``create`` whatever the method (a WebSocket upgrade is
  a GET), as Kubernetes checks it since 1.30.
"""

from __future__ import annotations

from collections.abc import Mapping

from shoal.security.identity import RequestAttributes, UserInfo

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_TRUE = ("1", "true", "True")
_CREATE_SUBRESOURCES = {"exec", "attach", "portforward"}


def request_attributes(
    user: UserInfo, method: str, path: str, query: Mapping[str, str] | None = None
) -> RequestAttributes:
    query = query or {}
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return RequestAttributes(user, method.lower(), path=path)
    if not rest:  # /api/v1, /apis/apps/v1: discovery
        return RequestAttributes(user, method.lower(), path=path)
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif len(rest) >= 2 and rest[0] == "namespaces" and group == "":
        namespace = rest[1]  # a Namespace is its own namespace
    if not rest:
        return RequestAttributes(user, method.lower(), path=path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    method = method.upper()
    if subresource in _CREATE_SUBRESOURCES:
        verb = "create"
    elif method == "GET" and (watch or query.get("watch", "") in _TRUE):
        verb = "watch"
    elif method == "GET":
        verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    field_selector = query.get("fieldSelector", "")
    if not name and verb in ("list", "watch"):
        # A list of one object by name is authorized as that object, as Kubernetes does.
        for term in field_selector.split(","):
            key, sep, value = term.partition("=")
            if sep and key.strip() == "metadata.name" and not value.startswith("="):
                name = value.strip()
    return RequestAttributes(
        user,
        verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        path=path,
        field_selector=field_selector,
    )
