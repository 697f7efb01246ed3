"""Registration and heartbeat: the agent's Node object and its Lease (DESIGN §5).

The Node says what the machine offers (capacity, addresses, system info, labels) and, through
its Ready condition, that the agent is alive. Heartbeats go to a small Lease in
``kube-node-lease`` every ``lease_interval`` seconds, as the kubelet does since 1.17: renewing a
tiny object is cheap, while a Node write is large and wakes every Node watcher, so the Ready
condition's ``lastHeartbeatTime`` is refreshed only every ``status_interval``.

Neither loop ever gives up: while the manager is unreachable they log and retry, and the pods
keep running (pod sync does not depend on them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.agent.config import HOSTNAME_LABEL, KUBELET_VERSION, LEASE_NAMESPACE, RUNTIME_LABEL, AgentConfig
from shoal.api import Object
from shoal.api.errors import AlreadyExists, ApiError, Conflict, NotFound
from shoal.api.kinds.lease import LEASE
from shoal.api.kinds.node import NODE
from shoal.client._interface import Client

log = logging.getLogger(__name__)

_ARCHITECTURES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time() -> str:
    """A Lease's MicroTime: renewals every 2 s need more than second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def memory_kib() -> int:
    """MemTotal from /proc/meminfo (the kernel writes it in KiB)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def capacity(max_pods: int) -> dict[str, str]:
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib()}Ki", "pods": str(max_pods)}


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return platform.system()


def node_info(runtime_name: str) -> dict[str, str]:
    """Every field NodeSystemInfo marks required; ids the machine does not expose fall back to
    the machine id, as the kubelet does when the DMI uuid is unreadable without root."""
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return {
        "machineID": machine_id,
        "systemUUID": _read("/sys/class/dmi/id/product_uuid") or machine_id,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": f"{runtime_name}://1",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": _ARCHITECTURES.get(platform.machine(), platform.machine()),
    }


def ready_condition(now: str, transition: str | None = None) -> dict[str, str]:
    return {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "shoal agent is posting ready status",
        "lastHeartbeatTime": now,
        "lastTransitionTime": transition or now,
    }


class NodeRegistration:
    """Creates or updates the Node, then keeps the Lease and the Ready condition fresh."""

    def __init__(self, client: Client, config: AgentConfig, runtime_name: str = "exec") -> None:
        self.client = client
        self.config = config
        self.runtime_name = runtime_name
        self.registered = asyncio.Event()  # set once the Node exists with this agent's status
        self._lease: Object | None = None  # the last Lease written, to renew without a read
        self.kubelet_port = 0  # the agent's endpoint (``nodeserver``); 0: none

    def labels(self) -> dict[str, str]:
        return {
            HOSTNAME_LABEL: self.config.node_name,
            RUNTIME_LABEL: self.runtime_name,
            **self.config.labels,
        }

    def status(self, transition: str | None = None) -> dict[str, Any]:
        addresses = [{"type": "InternalIP", "address": self.config.internal_ip}]
        addresses.append({"type": "Hostname", "address": socket.gethostname()})
        cap = capacity(self.config.max_pods)
        status: dict[str, Any] = {
            "capacity": cap,
            "allocatable": dict(cap),
            "addresses": addresses,
            "nodeInfo": node_info(self.runtime_name),
            "conditions": [ready_condition(now_rfc3339(), transition)],
        }
        if self.kubelet_port:
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.kubelet_port}}
        return status

    async def run(self) -> None:
        """Register (retrying until it works), then heartbeat until cancelled."""
        while not await self.register():  # noqa: ASYNC110 - the manager is remote: nothing to await
            await asyncio.sleep(self.config.retry_interval)
        self.registered.set()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._every(self.config.lease_interval, self.renew_lease), name="lease")
            tasks.create_task(self._every(self.config.status_interval, self.post_ready), name="node status")

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except Exception:
                # A heartbeat must outlive any one failure, even a bug: a dead heartbeat makes
                # the node NotReady and its pods get replaced elsewhere.
                log.exception("node %s: %s failed", self.config.node_name, getattr(step, "__name__", step))
            await asyncio.sleep(interval)

    async def register(self) -> bool:
        """Create the Node, or adopt the one a previous agent of this name left. True on success."""
        name = self.config.node_name
        body: Object = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": self.labels()},
            "status": self.status(),
        }
        try:
            try:
                await self.client.create(NODE, body)
                log.info("registered node %s", name)
                return True
            except AlreadyExists:
                pass
            # Labels others added (node update --label-add) stay; ours are set again.
            node = await self.client.patch(NODE, name, {"metadata": {"labels": self.labels()}})
            await self.client.patch(NODE, name, {"status": self._refreshed(node)}, subresource="status")
            log.info("updated the existing node %s", name)
            return True
        except ApiError as err:
            log.warning("cannot register node %s: %s; retrying", name, err)
            return False

    async def post_ready(self) -> None:
        """Refresh the Ready condition (and capacity), keeping the conditions others own."""
        try:
            node = await self.client.get(NODE, self.config.node_name)
            status = self._refreshed(node)
            await self.client.patch(NODE, self.config.node_name, {"status": status}, subresource="status")
        except NotFound:
            # Deleted behind our back (node rm): register again, as the kubelet does.
            await self.register()
        except ApiError as err:
            log.warning("cannot update node %s status: %s", self.config.node_name, err)

    def _refreshed(self, node: Object) -> dict[str, Any]:
        """This agent's status for ``node``: conditions others own are kept, and Ready keeps
        its transition time while it stays True (an agent restart is no transition)."""
        current: list[dict[str, Any]] = (node.get("status") or {}).get("conditions") or []
        old: dict[str, Any] = next((c for c in current if c["type"] == "Ready"), {})
        transition = old.get("lastTransitionTime") if old.get("status") == "True" else None
        status = self.status(transition)
        status["conditions"] = [*(c for c in current if c["type"] != "Ready"), *status["conditions"]]
        return status

    async def renew_lease(self) -> None:
        name = self.config.node_name
        now = micro_time()
        try:
            lease = self._lease
            if lease is None:
                try:
                    lease = await self.client.get(LEASE, name, LEASE_NAMESPACE)
                except NotFound:
                    self._lease = await self.client.create(LEASE, self._new_lease(now), LEASE_NAMESPACE)
                    return
            spec = {
                **(lease.get("spec") or {}),
                "holderIdentity": name,
                "leaseDurationSeconds": self.config.lease_duration,
                "renewTime": now,
            }
            self._lease = await self.client.update(LEASE, {**lease, "spec": spec})
        except (Conflict, NotFound, AlreadyExists):
            self._lease = None  # someone else wrote it: read it afresh next time
        except ApiError as err:
            self._lease = None
            log.warning("cannot renew lease of node %s: %s", name, err)

    def _new_lease(self, now: str) -> Object:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.node_name, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": self.config.node_name,
                "leaseDurationSeconds": self.config.lease_duration,
                "renewTime": now,
            },
        }
