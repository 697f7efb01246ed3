"""``shoal describe``: an object as readable text, generic over kinds.

Metadata first (name, namespace, labels, annotations, creation time and age), then every
other top-level field (spec, status, data...) as an indented key/value tree, then the
Events about the object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shoal.api import Kind, Object
from shoal.api.kinds.columns import human_duration, parse_time
from shoal.cli.output import render_rich

INDENT = "  "
_SKIPPED = ("apiVersion", "kind", "metadata")


def describe(kind: Kind, obj: Object, events: list[Object] | None, events_note: str = "") -> str:
    meta = obj.get("metadata") or {}
    lines = [f"{'Name:':<14}{meta.get('name', '')}"]
    if kind.namespaced:
        lines.append(f"{'Namespace:':<14}{meta.get('namespace', '')}")
    lines.append(f"{'Kind:':<14}{kind.kind} ({kind.api_version})")
    lines += _pairs("Labels:", meta.get("labels"))
    lines += _pairs("Annotations:", meta.get("annotations"))
    lines.append(f"{'Created:':<14}{_created(meta.get('creationTimestamp'))}")
    if meta.get("deletionTimestamp"):
        lines.append(f"{'Deleting:':<14}since {_created(meta['deletionTimestamp'])}")
    if meta.get("ownerReferences"):
        owners = ", ".join(f"{o.get('kind', '')}/{o.get('name', '')}" for o in meta["ownerReferences"])
        lines.append(f"{'Controlled By:':<14}{owners}")
    for key, value in obj.items():
        if key in _SKIPPED:
            continue
        title = key[:1].upper() + key[1:] + ":"
        if _is_empty(value):
            lines.append(f"{title:<14}<none>")
        elif isinstance(value, dict | list):
            lines.append(title)
            lines += tree(value, 1)
        else:
            lines.append(f"{title:<14}{_scalar(value)}")
    lines += _events_section(events, events_note)
    return "\n".join(lines)


def _pairs(title: str, values: dict[str, Any] | None) -> list[str]:
    """Labels or annotations, one ``key=value`` a line, kubectl's layout."""
    if not values:
        return [f"{title:<14}<none>"]
    items = [f"{k}={v}" for k, v in sorted(values.items())]
    return [f"{title:<14}{items[0]}"] + [f"{'':<14}{item}" for item in items[1:]]


def _created(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        seconds = (datetime.now(UTC) - parse_time(timestamp)).total_seconds()
    except ValueError:
        return timestamp
    return f"{timestamp} ({human_duration(seconds)} ago)"


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, dict | list | str) and not value)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tree(value: Any, depth: int) -> list[str]:
    """A dict or list as indented lines: scalars as aligned ``key:  value`` pairs, nested
    values as a ``key:`` line followed by their own lines one level deeper."""
    pad = INDENT * depth
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [f"{pad}{', '.join(_scalar(v) for v in value) or '<none>'}"]
        lines: list[str] = []
        for item in value:
            if isinstance(item, dict | list):
                inner = tree(item, depth + 1)
            else:
                inner = [f"{pad}{INDENT}{_scalar(item)}"]
            if inner:
                first = inner[0]
                inner[0] = f"{pad}- {first[len(pad) + len(INDENT) :]}"
            lines += inner or [f"{pad}- <none>"]
        return lines
    if not isinstance(value, dict):
        return [f"{pad}{_scalar(value)}"]
    width = max((len(str(k)) for k, v in value.items() if _inline(v) or _is_empty(v)), default=0) + 3
    lines = []
    for key, item in value.items():
        label = f"{key}:"
        if _is_empty(item):
            lines.append(f"{pad}{label:<{width}}<none>")
        elif isinstance(item, str) and "\n" in item:
            lines.append(f"{pad}{label}")
            lines += [f"{pad}{INDENT}{text}" for text in item.rstrip("\n").split("\n")]
        elif _inline(item):
            lines.append(f"{pad}{label:<{width}}{_scalar(item)}")
        else:
            lines.append(f"{pad}{label}")
            lines += tree(item, depth + 1)
    return lines


def _inline(value: Any) -> bool:
    """A value printed on its key's line: a one-line scalar, or a list of such scalars."""
    if isinstance(value, list):
        return all(_inline(v) and not isinstance(v, list) for v in value)
    return not isinstance(value, dict) and not (isinstance(value, str) and "\n" in value)


def _events_section(events: list[Object] | None, note: str) -> list[str]:
    if note:
        return [f"{'Events:':<14}{note}"]
    if not events:
        return [f"{'Events:':<14}<none>"]
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_edge=False, pad_edge=False, header_style=None, padding=(0, 2, 0, 0))
    headers = ("Type", "Reason", "Age", "From", "Message")
    for name in headers:
        table.add_column(Text(name), no_wrap=True, overflow="ignore")
    table.add_row(*(Text("-" * len(h)) for h in headers))
    for event in sorted(events, key=_event_time):
        source = event.get("source") or {}
        table.add_row(
            *(
                Text(c)
                for c in (
                    str(event.get("type") or ""),
                    str(event.get("reason") or ""),
                    _event_age(event),
                    str(event.get("reportingComponent") or source.get("component") or ""),
                    " ".join(str(event.get("message") or "").split()),
                )
            )
        )
    return ["Events:", *(f"{INDENT}{line}" for line in render_rich(table, 10_000).splitlines())]


def _event_time(event: Object) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _event_age(event: Object) -> str:
    last = _event_time(event)
    if not last:
        return "<unknown>"
    try:
        age = human_duration((datetime.now(UTC) - parse_time(last)).total_seconds())
        count = int(event.get("count") or 1)
        first = event.get("firstTimestamp")
        if count > 1 and first:
            span = human_duration((datetime.now(UTC) - parse_time(str(first))).total_seconds())
            return f"{age} (x{count} over {span})"
    except (ValueError, TypeError):
        return last
    return age
