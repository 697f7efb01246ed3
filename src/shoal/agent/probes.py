"""The seam for probes (liveness, readiness, startup; exec, httpGet, tcpSocket), which are
still to be built.

Pod sync asks a ``Probes`` object about each running container on every sync:
- ``ready``: feeds the container's ``ready`` and the pod's ContainersReady/Ready conditions;
- ``started``: a container whose startup probe has not passed yet is neither started nor ready
  (and its liveness and readiness probes do not run, as in Kubernetes);
- ``liveness_failure``: a reason makes sync stop the container, and the restart policy (with
  its back-off) decides what follows, as a kubelet liveness kill does.

The prober to come runs the probes in tasks of its own, keeps the verdicts, and enqueues the
pod's key when one changes (level-triggered, like every other input of sync). Until then
``NoProbes`` says every running container is started, ready and alive.
"""

from __future__ import annotations

from typing import Protocol

from shoal.api import Object


class Probes(Protocol):
    """Probe verdicts per running container; the prober (to come) keeps them up to date and
    enqueues the pod's key when one changes."""

    def ready(self, pod: Object, container: str, container_id: str) -> bool: ...

    def started(self, pod: Object, container: str, container_id: str) -> bool: ...

    def liveness_failure(self, pod: Object, container: str, container_id: str) -> str | None:
        """Why the container must be restarted, or None while it is healthy."""
        ...


class NoProbes:
    def ready(self, pod: Object, container: str, container_id: str) -> bool:
        return True

    def started(self, pod: Object, container: str, container_id: str) -> bool:
        return True

    def liveness_failure(self, pod: Object, container: str, container_id: str) -> str | None:
        return None
