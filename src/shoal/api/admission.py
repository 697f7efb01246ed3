"""Admission: the steps every create and update of every kind goes through, in one place.

``admit`` normalizes the body against the kind's schema (types, unknown fields, simple
defaults), applies the kind's computed defaults, and runs the generic metadata checks and
the kind's own validation. It never assigns uid, timestamps, resourceVersion or
generation: the server does, around it. Checks that compare with the stored object
(``Kind.validate_update``) are the caller's next step on an update.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FIELD_INVALID, FieldError, forbidden, invalid, required
from shoal.api.kind import Kind, Object
from shoal.api.schema import Context

# ``annotations`` clashes with the __future__ import; imported under another name.
from shoal.api.validation import annotations as annotation_errors
from shoal.api.validation import check, dns1123_label, labels, qualified_name


def admit(kind: Kind, obj: Object) -> tuple[Object, list[FieldError], list[str]]:
    """Return (normalized and defaulted object, field errors, paths of dropped unknown
    fields). The input is never modified. When the body has values of the wrong JSON type,
    only those errors are returned: defaults and validation assume a well-typed object
    (Kubernetes too refuses such a body before it validates anything)."""
    ctx = Context()
    normalized = kind.schema.normalize(obj, "", ctx)
    if not isinstance(normalized, dict):
        return {}, ctx.errors, ctx.unknown
    if any(_is_type_error(e) for e in ctx.errors):
        return normalized, ctx.errors, ctx.unknown
    errors = list(ctx.errors)
    out, type_errors = _with_type_meta(kind, normalized)
    errors += type_errors
    out.setdefault("metadata", {})
    if kind.default is not None:
        kind.default(out)
    errors += validate_metadata(kind, out["metadata"])
    if kind.validate is not None:
        errors += kind.validate(out)
    return out, _unique(errors), ctx.unknown


def _is_type_error(error: FieldError) -> bool:
    return error.type == FIELD_INVALID and error.detail.startswith("must be of type ")


def _with_type_meta(kind: Kind, obj: Object) -> tuple[Object, list[FieldError]]:
    """apiVersion and kind first (filled in when absent), as Kubernetes writes objects."""
    errors: list[FieldError] = []
    api_version = obj.get("apiVersion") or kind.api_version
    if api_version != kind.api_version:
        errors.append(invalid("apiVersion", api_version, f"must be {kind.api_version}"))
    kind_name = obj.get("kind") or kind.kind
    if kind_name != kind.kind:
        errors.append(invalid("kind", kind_name, f"must be {kind.kind}"))
    return {"apiVersion": api_version, "kind": kind_name, **obj}, errors


def validate_metadata(kind: Kind, meta: dict[str, Any]) -> list[FieldError]:
    """The ObjectMeta checks every kind shares: name (by the kind's rule), generateName,
    namespace, labels, annotations, finalizers, owner references."""
    errors: list[FieldError] = []
    name, generate_name = meta.get("name", ""), meta.get("generateName", "")
    if name:
        errors += check("metadata.name", name, kind.name_rule)
    elif not generate_name:
        errors.append(required("metadata.name", "name or generateName is required"))
    if generate_name:
        # A prefix may end in '-': the generated suffix follows it.
        prefix = generate_name[:-1] + "a" if generate_name.endswith("-") else generate_name
        errors += [invalid("metadata.generateName", generate_name, p) for p in kind.name_rule(prefix)]
    namespace = meta.get("namespace", "")
    if namespace and not kind.namespaced:
        errors.append(forbidden("metadata.namespace", "not allowed on this type"))
    elif namespace:
        errors += check("metadata.namespace", namespace, dns1123_label)
    errors += labels("metadata.labels", meta.get("labels"))
    errors += annotation_errors("metadata.annotations", meta.get("annotations"))
    for finalizer in meta.get("finalizers") or []:
        errors += check("metadata.finalizers", finalizer, qualified_name)
    controllers = [r for r in meta.get("ownerReferences") or [] if r.get("controller") is True]
    if len(controllers) > 1:
        names = " and ".join(f"{r.get('kind')}/{r.get('name')}" for r in controllers)
        detail = f'Only one reference can have Controller set to true. Found "true" in references for {names}'
        errors.append(invalid("metadata.ownerReferences", controllers, detail))
    return errors


def _unique(errors: list[FieldError]) -> list[FieldError]:
    """The schema and a kind's validation may report the same missing field; say it once."""
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for error in errors:
        key = (error.path, error.type, error.detail, repr(error.value))
        if key not in seen:
            seen.add(key)
            out.append(error)
    return out
