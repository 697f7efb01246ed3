"""The store rules every backend must apply identically, kept in one place so that the
backends cannot drift apart on what counts as a conflict or a too-old revision."""

from __future__ import annotations

from shoal.store._interface import Compacted, KeyNotFound, KeyValue, RevisionMismatch, StoreError


def check_precondition(key: str, current: KeyValue | None, expected_revision: int | None) -> KeyValue:
    """Return the current value an update or delete may replace, or raise why it may not."""
    if current is None:
        raise KeyNotFound(f"{key}: no such key", key)
    if expected_revision is not None and current.mod_revision != expected_revision:
        raise RevisionMismatch(key, expected_revision, current.mod_revision)
    return current


def check_readable(revision: int, compacted: int, head: int) -> None:
    """A past revision can be read only between the compaction point and now; a future one
    has no answer yet (etcd refuses it too), and guessing would hide caller bugs."""
    if revision < compacted:
        raise Compacted(revision, compacted)
    if revision > head:
        raise StoreError(f"revision {revision} is in the future: the store is at revision {head}")


def check_compactable(revision: int, head: int) -> None:
    if revision > head:
        raise StoreError(f"cannot compact to revision {revision}: the store is at revision {head}")


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``, so that a
    prefix scan becomes an index range ``prefix <= key < end``; None when there is no bound."""
    chars = prefix.rstrip(chr(0x10FFFF))
    if not chars:
        return None
    following = ord(chars[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be encoded for SQLite; skip them
        following = 0xE000
    return chars[:-1] + chr(following)
