"""A small schema language for Kubernetes-shaped JSON.

Each kind's wire format is declared once with these nodes (``Obj``, ``Arr``, ``Map``,
``Str``, ``Int``, …). One declaration serves four readers:

- ``normalize``: type-check a decoded body, drop unknown fields (reporting their paths, for
  ``fieldValidation=Strict``), and fill simple defaults — the first step of admission;
- strategic merge patch: ``Arr.merge_key`` and ``Arr.strategy`` say how lists merge;
- the OpenAPI document the server publishes (kubectl and fuzzers read it);
- the CLI, which reads kinds through the registry built on these declarations.

Field names and shapes follow the official specs in ``shared/specs/kubernetes``; the
declarations are written here by hand and cover the fields shoal understands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.api.errors import FIELD_INVALID, FieldError, required, unsupported
from shoal.api.errors import FieldError as _FE

Json = Any  # a decoded JSON value


@dataclass(slots=True)
class Context:
    """What one normalize() pass found: field errors and the paths of dropped unknown fields."""

    errors: list[FieldError] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    apply_defaults: bool = True


def _type_error(path: str, value: Json, expected: str) -> FieldError:
    return _FE(path, FIELD_INVALID, f"must be of type {expected}", _json_type(value), True)


def _json_type(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Schema:
    """Base of every node. ``normalize`` returns the cleaned value (a new object when it
    changed anything, so callers never see their input modified)."""

    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        raise NotImplementedError

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        raise NotImplementedError

    def default_value(self) -> Json:
        return None


@dataclass(frozen=True, eq=False)
class Str(Schema):
    enum: tuple[str, ...] = ()
    default: str | None = None
    format: str = ""
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, str):
            ctx.errors.append(_type_error(path, value, "string"))
            return value
        if self.enum and value not in self.enum:
            ctx.errors.append(unsupported(path, value, list(self.enum)))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        out: dict[str, Json] = {"type": "string"}
        if self.enum:
            out["enum"] = list(self.enum)
        if self.format:
            out["format"] = self.format
        if self.default is not None:
            out["default"] = self.default
        return _described(out, self.description)

    def default_value(self) -> Json:
        return self.default


@dataclass(frozen=True, eq=False)
class Int(Schema):
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None
    format: str = "int32"
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            ctx.errors.append(_type_error(path, value, "integer"))
            return value
        limit = 2**31 - 1 if self.format == "int32" else 2**63 - 1
        if not -limit - 1 <= value <= limit:
            ctx.errors.append(_FE(path, FIELD_INVALID, f"must fit in {self.format}", value, True))
        elif self.minimum is not None and value < self.minimum:
            detail = "must be greater than or equal to " + str(self.minimum)
            ctx.errors.append(_FE(path, FIELD_INVALID, detail, value, True))
        elif self.maximum is not None and value > self.maximum:
            detail = "must be less than or equal to " + str(self.maximum)
            ctx.errors.append(_FE(path, FIELD_INVALID, detail, value, True))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        out: dict[str, Json] = {"type": "integer", "format": self.format}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.default is not None:
            out["default"] = self.default
        return _described(out, self.description)

    def default_value(self) -> Json:
        return self.default


@dataclass(frozen=True, eq=False)
class Num(Schema):
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, int | float) or isinstance(value, bool):
            ctx.errors.append(_type_error(path, value, "number"))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        return _described({"type": "number", "format": "double"}, self.description)


@dataclass(frozen=True, eq=False)
class Bool(Schema):
    default: bool | None = None
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, bool):
            ctx.errors.append(_type_error(path, value, "boolean"))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        out: dict[str, Json] = {"type": "boolean"}
        if self.default is not None:
            out["default"] = self.default
        return _described(out, self.description)

    def default_value(self) -> Json:
        return self.default


@dataclass(frozen=True, eq=False)
class IntOrStr(Schema):
    """``intstr.IntOrString``: a port number or name, a count or a percentage."""

    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            ctx.errors.append(_type_error(path, value, "integer or string"))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        return _described({"x-kubernetes-int-or-string": True}, self.description)


# resource.Quantity: a decimal number with an optional binary or decimal suffix.
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")


@dataclass(frozen=True, eq=False)
class Quantity(Schema):
    """``resource.Quantity``: ``500m``, ``128Mi``, ``2``; numbers are accepted and kept."""

    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(int(value)) if float(value).is_integer() else str(value)
        if not isinstance(value, str) or not _QUANTITY.match(value):
            detail = "must be a quantity such as 500m, 2, 128Mi or 1G"
            ctx.errors.append(_FE(path, FIELD_INVALID, detail, value, True))
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        return _described({"x-kubernetes-int-or-string": True}, self.description)


@dataclass(frozen=True, eq=False)
class Raw(Schema):
    """Any JSON value, kept as it is (``RawExtension``, ``managedFields``)."""

    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        return value

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        return _described({"x-kubernetes-preserve-unknown-fields": True}, self.description)


@dataclass(frozen=True, eq=False)
class Map(Schema):
    """A JSON object with free keys and one value type (``labels``, ``data``, ``capacity``)."""

    values: Schema
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, dict):
            ctx.errors.append(_type_error(path, value, "object"))
            return value
        out: dict[str, Json] = {}
        for key, item in value.items():
            if item is None:
                continue
            out[key] = self.values.normalize(item, f"{path}[{key}]", ctx)
        return out

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        out = {"type": "object", "additionalProperties": self.values.openapi(defs)}
        return _described(out, self.description)


@dataclass(frozen=True, eq=False)
class Arr(Schema):
    """A JSON array. ``merge_key`` names the field that identifies an item when a strategic
    merge patch merges two lists (``containers`` by ``name``); without one, a patch
    replaces the whole list unless ``strategy`` is ``merge`` (lists of scalars merged as sets)."""

    items: Schema
    merge_key: str = ""
    strategy: str = ""  # "merge", "retainKeys", "merge,retainKeys" or "" (replace)
    map_keys: tuple[str, ...] = ()  # x-kubernetes-list-map-keys, for uniqueness checks
    description: str = ""

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, list):
            ctx.errors.append(_type_error(path, value, "array"))
            return value
        return [self.items.normalize(item, f"{path}[{i}]", ctx) for i, item in enumerate(value)]

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        out: dict[str, Json] = {"type": "array", "items": self.items.openapi(defs)}
        if self.merge_key:
            out["x-kubernetes-patch-merge-key"] = self.merge_key
        if self.strategy:
            out["x-kubernetes-patch-strategy"] = self.strategy
        if self.map_keys:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = list(self.map_keys)
        return _described(out, self.description)


@dataclass(eq=False)
class Obj(Schema):
    """A JSON object with named fields. Named objects (``name``) become shared definitions
    in the published OpenAPI, as ``io.k8s.api.core.v1.Container`` is upstream."""

    name: str
    fields: dict[str, Schema]
    required: tuple[str, ...] = ()
    description: str = ""
    # Extra fields declared after construction, for recursive or mutually referring types.
    extend: Callable[[], dict[str, Schema]] | None = None

    def __post_init__(self) -> None:
        self._resolved = False

    def resolved_fields(self) -> dict[str, Schema]:
        if not self._resolved and self.extend is not None:
            self.fields = {**self.fields, **self.extend()}
        self._resolved = True
        return self.fields

    def normalize(self, value: Json, path: str, ctx: Context) -> Json:
        if not isinstance(value, dict):
            ctx.errors.append(_type_error(path, value, "object"))
            return value
        fields = self.fields if self._resolved else self.resolved_fields()
        prefix = f"{path}." if path else ""
        out: dict[str, Json] = {}
        for key, item in value.items():
            schema = fields.get(key)
            if schema is None:
                ctx.unknown.append(prefix + key)
                continue
            if item is None:
                continue
            out[key] = schema.normalize(item, prefix + key, ctx)
        for key in self.required:
            # A required field with a default is satisfied by it (defaulting precedes
            # validation in Kubernetes: a RoleBinding's roleRef.apiGroup).
            if key not in out and not (ctx.apply_defaults and fields[key].default_value() is not None):
                ctx.errors.append(required(prefix + key))
        if ctx.apply_defaults:
            for key, schema in fields.items():
                if key not in out:
                    default = schema.default_value()
                    if default is not None:
                        out[key] = default
        return out

    def field(self, name: str) -> Schema | None:
        return self.resolved_fields().get(name)

    def openapi(self, defs: dict[str, Json]) -> dict[str, Json]:
        if self.name and self.name in defs:
            return {"$ref": f"#/definitions/{self.name}"}
        out: dict[str, Json] = {"type": "object"}
        if self.description:
            out["description"] = self.description
        if self.name:
            defs[self.name] = out  # placeholder first: fields may refer back to this type
        out["properties"] = {k: v.openapi(defs) for k, v in self.resolved_fields().items()}
        if self.required:
            out["required"] = list(self.required)
        return {"$ref": f"#/definitions/{self.name}"} if self.name else out


def _described(out: dict[str, Json], description: str) -> dict[str, Json]:
    if description:
        out["description"] = description
    return out


def child(schema: Schema | None, key: str) -> Schema | None:
    """The schema of ``key`` inside an object schema, or of the items inside an array."""
    if isinstance(schema, Obj):
        return schema.field(key)
    if isinstance(schema, Map):
        return schema.values
    return None
