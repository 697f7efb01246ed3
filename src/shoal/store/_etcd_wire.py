"""The etcd backend's wire format: keys, ranges, key-values and events in etcd's protobuf
messages, and the call settings both the store (``store.etcd``) and its watches
(``store._etcd_watch``) use."""

from __future__ import annotations

from typing import Any

import grpc
from aetcd import rpc

from shoal.store._interface import Event, EventType, KeyValue

RETRY_FIRST = 0.05  # seconds before the first retry of a call or a watch stream; doubles up to
RETRY_MAX = 1.0

# etcd checks this header before running the request: a member without a leader answers
# "no leader" at once instead of holding the call until the deadline.
REQUIRE_LEADER = (("hasleader", "true"),)
PERMANENT_FOR_WATCH = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def encode_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def decode_key(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """etcd's ``[key, range_end)`` for every key that starts with ``prefix``."""
    start = encode_key(prefix)
    if not start:
        return b"\0", b"\0"  # etcd: from the smallest key to the end
    stem = start.rstrip(b"\xff")
    if not stem:
        return start, b"\0"
    return start, stem[:-1] + bytes([stem[-1] + 1])


def key_value(kv: Any) -> KeyValue:
    return KeyValue(decode_key(kv.key), bytes(kv.value), int(kv.create_revision), int(kv.mod_revision))


def event_of(raw: Any) -> Event | None:
    """The store event for an etcd event, or None if its previous value was compacted away
    (an update or delete whose ``prev`` would be missing, which would read as a create)."""
    prev = key_value(raw.prev_kv) if raw.HasField("prev_kv") else None
    if raw.type == rpc.Event.DELETE:
        if prev is None:
            return None
        last = KeyValue(prev.key, prev.value, prev.create_revision, int(raw.kv.mod_revision))
        return Event(EventType.DELETE, last, prev)
    if prev is None and raw.kv.version > 1:
        return None
    return Event(EventType.PUT, key_value(raw.kv), prev)


def compare(key: bytes, target: Any, result: Any, **value: int) -> Any:
    return rpc.Compare(key=key, target=target, result=result, **value)


def watch_request(key: bytes, end: bytes, start_revision: int) -> Any:
    create = rpc.WatchCreateRequest(key=key, range_end=end, start_revision=start_revision, prev_kv=True)
    return rpc.WatchRequest(create_request=create)
