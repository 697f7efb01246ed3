"""``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for with ``as=Table``.

The columns come from the kind's declaration, so ``kubectl get`` and ``shoal get`` print
the same table.
"""

from __future__ import annotations

from typing import Any

from shoal.api import Kind, Object

INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT = "None", "Metadata", "Object"


def wants_table(accept: str) -> bool:
    """True when the first acceptable media type of an Accept header asks for a Table."""
    for media in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in media.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
        if media.split(";")[0].strip() in ("application/json", "*/*", "application/*"):
            return False
    return False


def column_definitions(kind: Kind) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }
        for c in kind.columns
    ]


def row(kind: Kind, obj: Object, include: str) -> dict[str, Any]:
    out: dict[str, Any] = {"cells": [_cell(c.value, obj) for c in kind.columns]}
    if include == INCLUDE_OBJECT:
        out["object"] = obj
    elif include == INCLUDE_METADATA:
        out["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return out


def table(kind: Kind, objects: list[Object], metadata: dict[str, Any], include: str) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(kind),
        "rows": [row(kind, o, include) for o in objects],
    }


def _cell(value: Any, obj: Object) -> Any:
    try:
        return value(obj)
    except (KeyError, IndexError, TypeError, ValueError):
        return "<unknown>"
