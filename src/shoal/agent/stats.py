"""Resource use of the node and its containers, sampled in the background: the kubelet's summary
(``GET /stats/summary`` on the agent's endpoint), which the manager's ``metrics.k8s.io`` API
reads for ``kubectl top`` and, later, autoscaling.

CPU is a rate, so it needs two samples: each round reads every running container's cumulative
CPU time (``Runtime.stats``) and the node's (/proc/stat), and the usage is the difference from
the round before over the time between them. A container appears from its second sample on.
Memory is the working set the runtime reports (RSS for the exec runtime).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shoal.agent.runtimes import ContainerIdentity, ContainerRuntimeError, ContainerState, Runtime

log = logging.getLogger(__name__)

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class _Sample:
    cpu_seconds: float
    at: float  # seconds: when it was read (the runtime's clock if it says, else ours)


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    identity: ContainerIdentity
    nano_cores: int
    working_set_bytes: int


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (every field of /proc/stat's cpu line but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    return busy / _TICKS


def _node_memory_working_set() -> int:
    info: dict[str, int] = {}
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) * 1024
    return info.get("MemTotal", 0) - info.get("MemAvailable", 0)


class StatsCollector:
    """Args:
    runtime: whose running containers are sampled.
    interval: seconds between rounds (the metrics' window).
    """

    def __init__(self, runtime: Runtime, interval: float = 10.0) -> None:
        self.runtime = runtime
        self.interval = interval
        self._previous: dict[str, _Sample] = {}  # container id -> its last sample
        self._node_previous: _Sample | None = None
        self._containers: list[ContainerUsage] = []
        self._node: tuple[int, int] | None = None  # nano cores, working set bytes
        self._taken_at = 0.0  # wall-clock time of the last round

    async def run(self) -> None:
        while True:
            try:
                await self.collect()
            except ContainerRuntimeError as err:  # the engine is away: try again next round
                log.info("no container stats this round: %s", err)
            except Exception:
                # Metrics are a side line: a bug here is logged loudly but never stops the
                # agent, whose pods matter more.
                log.exception("sampling container stats failed")
            await asyncio.sleep(self.interval)  # a periodic sampler: the period is the point

    async def collect(self) -> None:
        """One round: sample, and turn the differences from the last round into usage."""
        running = [i for i in await self.runtime.list() if i.status.state is ContainerState.RUNNING]
        results = await asyncio.gather(
            *(self.runtime.stats(info.status.id) for info in running), return_exceptions=True
        )
        now = time.time()
        samples: dict[str, _Sample] = {}
        usage: list[ContainerUsage] = []
        for info, result in zip(running, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, ContainerRuntimeError):
                    raise result
                continue  # ended between list and stats
            # The engine's own read time: a sample can take a second to come back.
            sample = samples[info.status.id] = _Sample(result.cpu_seconds, result.read_at or now)
            before = self._previous.get(info.status.id)
            if before is not None and sample.at > before.at:
                rate = max(sample.cpu_seconds - before.cpu_seconds, 0.0) / (sample.at - before.at)
                usage.append(ContainerUsage(info.identity, int(rate * 1e9), result.memory_rss_bytes))
        node_sample = _Sample(await asyncio.to_thread(_node_cpu_seconds), now)
        if self._node_previous is not None and now > self._node_previous.at:
            rate = max(node_sample.cpu_seconds - self._node_previous.cpu_seconds, 0.0) / (
                now - self._node_previous.at
            )
            self._node = (int(rate * 1e9), await asyncio.to_thread(_node_memory_working_set))
        self._node_previous = node_sample
        self._previous = samples
        self._containers = usage
        self._taken_at = time.time()

    def summary(self, node_name: str) -> dict[str, Any]:
        """The last round as the kubelet's Summary API shapes it (stats/v1alpha1, the parts
        metrics need): node usage, and per pod its containers' usage."""
        timestamp = _rfc3339(self._taken_at) if self._taken_at else None
        pods: dict[str, dict[str, Any]] = {}
        for usage in self._containers:
            identity = usage.identity
            pod = pods.setdefault(
                identity.pod_uid,
                {
                    "podRef": {
                        "name": identity.pod_name,
                        "namespace": identity.namespace,
                        "uid": identity.pod_uid,
                    },
                    "containers": [],
                },
            )
            pod["containers"].append(
                {
                    "name": identity.container_name,
                    "cpu": {"time": timestamp, "usageNanoCores": usage.nano_cores},
                    "memory": {"time": timestamp, "workingSetBytes": usage.working_set_bytes},
                }
            )
        node: dict[str, Any] = {"nodeName": node_name}
        if self._node is not None:
            node["cpu"] = {"time": timestamp, "usageNanoCores": self._node[0]}
            node["memory"] = {"time": timestamp, "workingSetBytes": self._node[1]}
        return {"node": node, "pods": list(pods.values()), "window": f"{self.interval:g}s"}
