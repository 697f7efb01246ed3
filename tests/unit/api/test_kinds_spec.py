"""Every declared kind against the official OpenAPI specs: each field exists upstream with
the same JSON type, required lists match, and list patch metadata (merge key, strategy,
map keys) is the same. The specs are references kept next to the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shoal.api import ALL_KINDS
from shoal.api.schema import Arr, Bool, Int, IntOrStr, Map, Num, Obj, Quantity, Raw, Schema, Str

SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "kubernetes"


def _load() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for path in sorted(SPECS.glob("*.json")):
        schemas.update(json.loads(path.read_text())["components"]["schemas"])
    return schemas


pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason="official specs not available")


def _named_objects() -> dict[str, Obj]:
    found: dict[str, Obj] = {}

    def walk(schema: Schema) -> None:
        if isinstance(schema, Obj):
            if schema.name in found:
                assert found[schema.name] is schema, f"two different declarations of {schema.name}"
                return
            found[schema.name] = schema
            for child in schema.resolved_fields().values():
                walk(child)
        elif isinstance(schema, Arr):
            walk(schema.items)
        elif isinstance(schema, Map):
            walk(schema.values)

    for kind in ALL_KINDS:
        walk(kind.schema)
    return found


def _ref(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "allOf" in prop:
        return str(prop["allOf"][0]["$ref"]).rsplit("/", 1)[-1]
    return ""


def _problems(path: str, ours: Schema, theirs: dict[str, Any], specs: dict[str, Any]) -> list[str]:
    ref = _ref(theirs)
    if ref and ref in specs and not isinstance(ours, Obj):
        theirs = {**specs[ref], **{k: v for k, v in theirs.items() if k.startswith("x-")}}
    kind = theirs.get("type")
    if isinstance(ours, Raw):
        return []
    if isinstance(ours, Obj):
        return [] if ref == ours.name else [f"{path}: object {ours.name} but spec has {ref or kind}"]
    if isinstance(ours, IntOrStr | Quantity):
        ok = ref.endswith(("IntOrString", "Quantity")) or theirs.get("x-kubernetes-int-or-string")
        return [] if ok else [f"{path}: int-or-string but spec has {ref or kind}"]
    if isinstance(ours, Str):
        problems = [] if kind == "string" else [f"{path}: string but spec has {kind}"]
        if ours.format and ours.format != theirs.get("format"):
            problems.append(f"{path}: format {ours.format} but spec has {theirs.get('format')}")
        return problems
    if isinstance(ours, Int):
        if kind != "integer":
            return [f"{path}: integer but spec has {kind}"]
        return (
            []
            if ours.format == theirs.get("format", "int32")
            else [f"{path}: {ours.format} vs {theirs.get('format')}"]
        )
    if isinstance(ours, Bool):
        return [] if kind == "boolean" else [f"{path}: boolean but spec has {kind}"]
    if isinstance(ours, Num):
        return [] if kind == "number" else [f"{path}: number but spec has {kind}"]
    if isinstance(ours, Map):
        if kind != "object" or "additionalProperties" not in theirs:
            return [f"{path}: map but spec has {kind}"]
        return _problems(f"{path}{{}}", ours.values, theirs["additionalProperties"], specs)
    if isinstance(ours, Arr):
        if kind != "array":
            return [f"{path}: array but spec has {kind}"]
        problems = []
        if ours.merge_key != theirs.get("x-kubernetes-patch-merge-key", ""):
            problems.append(
                f"{path}: merge key {ours.merge_key!r} vs {theirs.get('x-kubernetes-patch-merge-key')!r}"
            )
        if ours.strategy != theirs.get("x-kubernetes-patch-strategy", ""):
            problems.append(
                f"{path}: strategy {ours.strategy!r} vs {theirs.get('x-kubernetes-patch-strategy')!r}"
            )
        if list(ours.map_keys) != theirs.get("x-kubernetes-list-map-keys", []):
            problems.append(f"{path}: map keys {ours.map_keys} vs {theirs.get('x-kubernetes-list-map-keys')}")
        return problems + _problems(f"{path}[]", ours.items, theirs["items"], specs)
    return [f"{path}: unexpected schema node {type(ours).__name__}"]


def test_every_declared_object_follows_the_spec() -> None:
    specs = _load()
    problems: list[str] = []
    for name, obj in sorted(_named_objects().items()):
        if name not in specs:
            problems.append(f"{name}: not in the specs")
            continue
        spec = specs[name]
        properties = spec.get("properties", {})
        if set(obj.required) != set(spec.get("required", [])):
            problems.append(f"{name}: required {sorted(obj.required)} vs {sorted(spec.get('required', []))}")
        for field, schema in obj.resolved_fields().items():
            if field not in properties:
                problems.append(f"{name}.{field}: not in the spec")
                continue
            problems += _problems(f"{name}.{field}", schema, properties[field], specs)
    assert problems == []


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_top_level_object_is_the_spec_definition(kind: Any) -> None:
    specs = _load()
    gvk = specs[kind.schema.name].get("x-kubernetes-group-version-kind", [{}])[0]
    assert (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (
        kind.group,
        kind.version,
        kind.kind,
    )
