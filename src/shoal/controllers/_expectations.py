"""Expectations: a controller does not act on a key again until the informer has shown it
the pods it created or deleted itself (Kubernetes' ReplicaSet controller does the same).
Without them a controller reading a cache that lags its own writes would create twice."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Pending:
    adds: int
    deletes: int
    since: float


class Expectations:
    def __init__(self, timeout: float = 300.0) -> None:
        self._pending: dict[str, _Pending] = {}
        self._timeout = timeout  # a lost watch event must not block a key for ever

    def expect(self, key: str, *, adds: int = 0, deletes: int = 0) -> None:
        self._pending[key] = _Pending(adds, deletes, time.monotonic())

    def observed_add(self, key: str) -> None:
        if (pending := self._pending.get(key)) is not None:
            pending.adds -= 1

    def observed_delete(self, key: str) -> None:
        if (pending := self._pending.get(key)) is not None:
            pending.deletes -= 1

    def satisfied(self, key: str) -> bool:
        pending = self._pending.get(key)
        if pending is None:
            return True
        if (pending.adds <= 0 and pending.deletes <= 0) or time.monotonic() - pending.since > self._timeout:
            del self._pending[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
