"""Cell helpers shared by the table columns of several kinds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.api.kind import Column, Object


def human_duration(seconds: float) -> str:
    """Kubernetes' short age format: 45s, 5m, 3h12m, 4d, 2y."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rem = hours % 24
        return f"{days}d{rem}h" if rem else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def age(obj: Object) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - parse_time(created)).total_seconds())


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or ``default`` where any step is missing."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return default
    return default if obj is None else obj


def joined(values: Any, empty: str = "<none>") -> str:
    items = [str(v) for v in values or []]
    return ",".join(items) if items else empty


def selector_text(selector: dict[str, Any] | None, empty: str = "<none>") -> str:
    """A LabelSelector in kubectl's one-line form: ``app=web,tier in (a,b)``."""
    if not selector:
        return empty
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for req in selector.get("matchExpressions") or []:
        op, values = req.get("operator", ""), ",".join(req.get("values") or [])
        if op == "In":
            parts.append(f"{req['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{req['key']} notin ({values})")
        elif op == "Exists":
            parts.append(req["key"])
        elif op == "DoesNotExist":
            parts.append(f"!{req['key']}")
    return ",".join(parts) or empty


# The first and last columns of most tables, as kubectl prints them.
NAME = Column("Name", lambda o: o["metadata"]["name"], format="name", description="the object's name")
AGE = Column("Age", age, description="time since the object was created")
