"""OpenAPI v3 documents, one per group version, generated from the kind declarations.

kubectl reads them to learn that the server validates fields (``fieldValidation``) and how
lists merge in a strategic merge patch; fuzzers read them to build requests.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from shoal.api import Kind, Registry

_WRITE_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "enum": ["All"]}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
    {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "enum": ["Ignore", "Warn", "Strict"]},
    },
]
_LIST_PARAMS = [
    {"name": "labelSelector", "in": "query", "schema": {"type": "string"}},
    {"name": "fieldSelector", "in": "query", "schema": {"type": "string"}},
    {"name": "resourceVersion", "in": "query", "schema": {"type": "string"}},
    {"name": "resourceVersionMatch", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
    {"name": "continue", "in": "query", "schema": {"type": "string"}},
]
_PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
)
_STATUS = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}
_STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "apiVersion": {"type": "string"},
        "status": {"type": "string"},
        "message": {"type": "string"},
        "reason": {"type": "string"},
        "code": {"type": "integer"},
        "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _documents(registry: Registry) -> dict[str, bytes]:
    docs: dict[str, bytes] = {}
    for group, versions in registry.groups().items():
        for version in versions:
            kinds = [k for k in registry.kinds if k.group == group and k.version == version]
            docs[gv_path(group, version)] = orjson.dumps(_document(group, version, kinds))
    return docs


def index(registry: Registry) -> dict[str, Any]:
    paths = {}
    for path, doc in _documents(registry).items():
        digest = hashlib.sha512(doc).hexdigest()[:32].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document(registry: Registry, path: str) -> bytes | None:
    return _documents(registry).get(path)


def _document(group: str, version: str, kinds: list[Kind]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for kind in kinds:
        kind.schema.openapi(defs)
        top = defs[kind.schema.name]
        top["x-kubernetes-group-version-kind"] = [{"group": group, "version": version, "kind": kind.kind}]
        paths.update(_paths(kind))
    defs["io.k8s.apimachinery.pkg.apis.meta.v1.Status"] = _STATUS_SCHEMA
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "shoal", "version": f"{group or 'core'}/{version}"},
        "paths": paths,
        "components": {"schemas": defs},
    }
    # The schema language writes Swagger 2.0 style references; OpenAPI 3 keeps them elsewhere.
    text = orjson.dumps(doc).replace(b"#/definitions/", b"#/components/schemas/")
    result: dict[str, Any] = orjson.loads(text)
    return result


def _paths(kind: Kind) -> dict[str, Any]:
    base = f"/{gv_path(kind.group, kind.version)}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{base}/{kind.plural}"
    )
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    ref = {"$ref": f"#/components/schemas/{kind.schema.name}"}
    ns_param = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}]
    scope = ns_param if kind.namespaced else []
    item_params = [*scope, {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]

    def op(
        action: str,
        op_id: str,
        params: list[dict[str, Any]],
        body: dict[str, Any] | None = None,
        body_types: tuple[str, ...] = ("application/json",),
        response: dict[str, Any] = ref,
        codes: tuple[str, ...] = ("200",),
        of: dict[str, str] = gvk,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": op_id,
            "parameters": params,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": of,
            "responses": {
                **{
                    c: {"description": "OK", "content": {"application/json": {"schema": response}}}
                    for c in codes
                },
                "default": {"description": "error", "content": {"application/json": {"schema": _STATUS}}},
            },
        }
        if body is not None:
            out["requestBody"] = {"required": True, "content": {t: {"schema": body} for t in body_types}}
        return out

    name = kind.kind
    patch_body: dict[str, Any] = {"type": "object"}
    paths: dict[str, Any] = {
        collection: {
            "get": op("list", f"list{name}", [*scope, *_LIST_PARAMS], response={"type": "object"}),
            "post": op("post", f"create{name}", [*scope, *_WRITE_PARAMS], ref, codes=("200", "201")),
        },
        f"{collection}/{{name}}": {
            "get": op("get", f"read{name}", item_params),
            "put": op("put", f"replace{name}", [*item_params, *_WRITE_PARAMS], ref),
            "patch": op("patch", f"patch{name}", [*item_params, *_WRITE_PARAMS], patch_body, _PATCH_TYPES),
            "delete": op("delete", f"delete{name}", item_params, response={"type": "object"}),
        },
    }
    if kind.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "get": op("get", f"read{name}Status", item_params),
            "put": op("put", f"replace{name}Status", [*item_params, *_WRITE_PARAMS], ref),
            "patch": op(
                "patch", f"patch{name}Status", [*item_params, *_WRITE_PARAMS], patch_body, _PATCH_TYPES
            ),
        }
    if kind.scale is not None:
        scale: dict[str, Any] = {"type": "object"}
        scale_gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        paths[f"{collection}/{{name}}/scale"] = {
            "get": op("get", f"read{name}Scale", item_params, response=scale, of=scale_gvk),
            "put": op(
                "put",
                f"replace{name}Scale",
                [*item_params, *_WRITE_PARAMS],
                scale,
                response=scale,
                of=scale_gvk,
            ),
            "patch": op(
                "patch",
                f"patch{name}Scale",
                [*item_params, *_WRITE_PARAMS],
                patch_body,
                _PATCH_TYPES,
                response=scale,
                of=scale_gvk,
            ),
        }
    return paths
