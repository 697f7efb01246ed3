"""Label and field selectors applied to objects, and to store events as watchers see them."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.api import Kind, Object
from shoal.api.selectors import FieldSelector, LabelSelector
from shoal.server.codec import decode
from shoal.store import Event, EventType


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, ERROR, BOOKMARK
    object: Object


class Filter:
    """A compiled label + field selector for one kind."""

    __slots__ = ("fields", "kind", "labels")

    def __init__(self, kind: Kind, label_selector: str, field_selector: str) -> None:
        self.kind = kind
        self.labels = LabelSelector.parse(label_selector) if label_selector else None
        allowed = {"metadata.name", "metadata.namespace", *kind.field_selectors}
        self.fields = FieldSelector.parse(field_selector, allowed) if field_selector else None

    @property
    def empty(self) -> bool:
        return self.labels is None and self.fields is None

    def matches(self, obj: Object) -> bool:
        meta = obj["metadata"]
        if self.labels is not None and not self.labels.matches(meta.get("labels")):
            return False
        if self.fields is not None:
            values = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
            for name, extract in self.kind.field_selectors.items():
                values[name] = extract(obj)
            if not self.fields.matches(values):
                return False
        return True


def translate(event: Event, flt: Filter) -> WatchEvent | None:
    """A store event as a watch event, seen through a selector: an object that stops
    matching is DELETED for this watcher, one that starts matching is ADDED."""
    obj = decode(event.kv)
    if event.type is EventType.DELETE:
        return WatchEvent("DELETED", obj) if flt.empty or flt.matches(obj) else None
    if flt.empty:
        return WatchEvent("ADDED" if event.prev is None else "MODIFIED", obj)
    now_matches = flt.matches(obj)
    was_matching = event.prev is not None and flt.matches(decode(event.prev))
    if now_matches:
        return WatchEvent("MODIFIED" if was_matching else "ADDED", obj)
    return WatchEvent("DELETED", obj) if was_matching else None


def name_from_selector(flt: Filter) -> str:
    """A ``metadata.name=x`` field selector lets a list skip decoding other objects."""
    if flt.fields is None:
        return ""
    return flt.fields.exact("metadata.name") or ""
