"""The seam between pod sync and the prober (``prober.Prober``, the agent's default).

Pod sync asks a ``Probes`` object about each running container on every sync:
- ``ready``: feeds the container's ``ready`` and the pod's ContainersReady/Ready conditions;
- ``started``: a container whose startup probe has not passed yet is neither started nor ready
  (and its liveness and readiness probes do not run, as in Kubernetes);
- ``liveness_failure``: a reason makes sync stop the container, and the restart policy (with
  its back-off) decides what follows, as a kubelet liveness kill does.

and tells it about the containers' lives: ``track`` on every sync of a running container (the
prober starts that attempt's probe tasks the first time), ``forget`` when it has exited or is
removed (its tasks stop). The prober runs the probes in tasks of its own (owned by ``run()``,
which pod sync runs in its task group), keeps the verdicts, and enqueues the pod's key when one
changes: level-triggered, like every other input of sync. ``NoProbes`` says every running
container is started, ready and alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shoal.agent.runtimes import ContainerStatus
from shoal.api import Object


class Probes(Protocol):
    """Probe verdicts per running container; the prober keeps them up to date and enqueues the
    pod's key when one changes."""

    async def run(self) -> None:
        """Own the probe tasks until cancelled (it may return at once when there are none)."""
        ...

    def track(
        self, pod: Object, container: Mapping[str, Any], status: ContainerStatus, *, host: str | None = None
    ) -> None:
        """``container`` (from the pod's spec) runs as ``status``: probe it, if not yet done.
        ``host``: the pod's IP, where httpGet and tcpSocket probes connect (None: the default)."""
        ...

    def forget(self, container_id: str) -> None:
        """The container has exited or is removed: stop its probes and drop their verdicts."""
        ...

    def ready(self, pod: Object, container: str, container_id: str) -> bool: ...

    def started(self, pod: Object, container: str, container_id: str) -> bool: ...

    def liveness_failure(self, pod: Object, container: str, container_id: str) -> str | None:
        """Why the container must be restarted, or None while it is healthy."""
        ...


class NoProbes:
    async def run(self) -> None:
        return None

    def track(
        self, pod: Object, container: Mapping[str, Any], status: ContainerStatus, *, host: str | None = None
    ) -> None:
        return None

    def forget(self, container_id: str) -> None:
        return None

    def ready(self, pod: Object, container: str, container_id: str) -> bool:
        return True

    def started(self, pod: Object, container: str, container_id: str) -> bool:
        return True

    def liveness_failure(self, pod: Object, container: str, container_id: str) -> str | None:
        return None
