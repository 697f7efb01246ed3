"""The agent's settings, in one frozen value shared by registration, heartbeat and pod sync.

Defaults are the kubelet's where it has one (lease every 2 s for 10 s, back-off 10 s doubling to
5 min, 110 pods); tests shrink the intervals instead of sleeping through them.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.0-shoal"
HOSTNAME_LABEL = "kubernetes.io/hostname"
RUNTIME_LABEL = "shoal.io/runtime"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Args:
    node_name: the Node's name, the Lease's name and holder, the pods' ``spec.nodeName``.
    internal_ip: the node's InternalIP address, also its pods' hostIP.
    pod_ip: the pods' podIP; in host networking mode (the only one so far) pods share the
        node's address, so it defaults to ``internal_ip``.
    labels: user labels added to the Node's (they may override the defaults).
    lease_interval: seconds between Lease renewals (the heartbeat the node controller reads).
    lease_duration: the Lease's ``leaseDurationSeconds``.
    status_interval: seconds between refreshes of the Ready condition's lastHeartbeatTime:
        rarer than the Lease, because a Node write is big and wakes every Node watcher.
    retry_interval: seconds between attempts while the manager is unreachable.
    backoff_initial, backoff_max: restart back-off of crashing containers.
    workers: pods synced at once (one pod is never synced by two workers).
    max_pods: the ``pods`` capacity.
    event_refresh: seconds between two writes of one Event's count (a crash loop's repeats).
    stats_interval: seconds between two samples of the containers' resource use (the
        metrics' window).
    runtime: "exec" or "docker" (``agent.run.make_runtime``); docker_host: the engine's address.
    volume_dir: where pods' volumes are made (emptyDir, secret, configMap); None: no volumes,
        for runtimes that cannot mount them (exec).
    """

    node_name: str = field(default_factory=socket.gethostname)
    internal_ip: str = "127.0.0.1"
    pod_ip: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    lease_interval: float = 2.0
    lease_duration: int = 10
    status_interval: float = 10.0
    retry_interval: float = 1.0
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    workers: int = 16
    max_pods: int = 110
    event_refresh: float = 10.0
    stats_interval: float = 10.0
    runtime: str = "exec"
    docker_host: str | None = None
    volume_dir: Path | None = None

    @property
    def effective_pod_ip(self) -> str:
        return self.pod_ip or self.internal_ip
