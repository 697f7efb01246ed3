"""When a container that ended is started again: restart policy and crash-loop back-off.

Back-off follows the kubelet's (``flowcontrol.Backoff``, keyed by pod uid and container name):
the first restart is immediate and arms a delay of ``initial`` seconds; while a container
ends again less than that delay after it finished, it waits (``CrashLoopBackOff``), and every
restart doubles the delay up to ``maximum``. A container that stayed quiet for twice the maximum
starts from ``initial`` again. The entries live in memory: an agent restart forgives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shoal.agent.runtimes import ContainerState, ContainerStatus

REASON_CRASH_LOOP = "CrashLoopBackOff"


def should_restart(policy: str, status: ContainerStatus) -> bool:
    """Whether ``policy`` (the pod's restartPolicy) restarts this exited container."""
    if status.state is not ContainerState.EXITED:
        return False
    if policy == "Always":
        return True
    return policy == "OnFailure" and status.exit_code != 0


@dataclass(slots=True)
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Args:
    initial, maximum: the first delay and the cap, in seconds.
    clock: a monotonic clock; tests may pass a fake one.
    """

    def __init__(self, initial: float, maximum: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def remaining(self, key: tuple[str, str], finished_at: float) -> float:
        """Seconds left to wait before restarting a container that ended at ``finished_at``
        (this clock's time); 0 when it may restart now."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, finished_at + entry.delay - self.clock())

    def delay(self, key: tuple[str, str]) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def restarted(self, key: tuple[str, str]) -> None:
        """Note a restart: the next one waits longer, unless this one came after a long calm."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or now - entry.last_update > 2 * self.maximum:
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = now

    def forget_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._entries if k[0] == pod_uid]:
            del self._entries[key]
