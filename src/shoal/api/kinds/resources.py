"""Resource requirements (``requests`` and ``limits``) of a container or a pod: names,
quantities, and requests within limits.

Resource names follow Kubernetes: ``cpu``, ``memory``, ``ephemeral-storage`` and
``hugepages-<size>`` are native; ``<domain>/<name>`` names are extended resources (device
plugins), counted in whole units and never overcommitted, as hugepages are not.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import FieldError, invalid, required
from shoal.api.quantity import try_parse
from shoal.api.validation import check, qualified_name

_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    """Resource names and quantities; requests no larger than limits (equal, for resources
    that cannot be overcommitted: hugepages and extended resources)."""
    errors: list[FieldError] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for field, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            item = f"{path}.{field}[{name}]"
            errors += _resource_name(name, item)
            amount = try_parse(value)
            if amount is not None and amount < 0:
                errors.append(invalid(item, value, "must be greater than or equal to 0"))
            elif amount is not None and _is_extended(name) and amount.denominator != 1:
                errors.append(invalid(item, value, "must be an integer"))
    for name, value in requests.items():
        request = try_parse(value)
        if name in limits:
            limit = try_parse(limits[name])
            if request is None or limit is None:
                continue
            if not _overcommit_allowed(name) and request != limit:
                detail = f"must be equal to {name} limit of {limits[name]}"
                errors.append(invalid(f"{path}.requests", value, detail))
            elif request > limit:
                detail = f"must be less than or equal to {name} limit of {limits[name]}"
                errors.append(invalid(f"{path}.requests", value, detail))
        elif not _overcommit_allowed(name):
            errors.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
    return errors


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    return not _is_native(name) and not qualified_name(name)


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith("hugepages-")


def _resource_name(name: str, path: str) -> list[FieldError]:
    errors = check(path, name, qualified_name)
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errors.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        errors.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errors
