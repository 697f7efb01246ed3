"""Registration and heartbeat: the Node the agent writes, and the Lease it keeps renewing."""

from __future__ import annotations

import asyncio
import dataclasses
import os

from shoal.agent.config import LEASE_NAMESPACE
from shoal.agent.node import memory_kib
from shoal.api.kinds.lease import LEASE
from shoal.api.kinds.node import NODE
from tests.unit.agent.test_agent_harness import FAST, Harness, harness

__all__ = ["harness"]


async def test_node_registers_with_capacity_info_and_ready(harness: Harness) -> None:
    config = dataclasses.replace(FAST, internal_ip="10.1.2.3", labels={"zone": "a"})
    async with harness.running(config) as agent:
        await asyncio.wait_for(agent.node.registered.wait(), 5)
        node = await harness.client.get(NODE, "node-1")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-1"
    assert labels["shoal.io/runtime"] == "exec"
    assert labels["zone"] == "a"
    status = node["status"]
    assert status["capacity"] == {"cpu": str(os.cpu_count()), "memory": f"{memory_kib()}Ki", "pods": "110"}
    assert status["allocatable"] == status["capacity"]
    assert {"type": "InternalIP", "address": "10.1.2.3"} in status["addresses"]
    assert any(a["type"] == "Hostname" for a in status["addresses"])
    info = status["nodeInfo"]
    assert info["operatingSystem"] == "linux"
    assert info["kubeletVersion"] == "v1.32.0-shoal"
    assert info["containerRuntimeVersion"] == "exec://1"
    assert info["architecture"] and info["kernelVersion"]
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True"
    assert ready["lastHeartbeatTime"] and ready["lastTransitionTime"]


async def test_existing_node_is_updated_and_keeps_foreign_labels(harness: Harness) -> None:
    await harness.client.create(
        NODE,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"added-by": "admin"}},
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                    {"type": "DiskPressure", "status": "False"},
                ]
            },
        },
    )
    async with harness.running() as agent:
        await asyncio.wait_for(agent.node.registered.wait(), 5)
        node = await harness.client.get(NODE, "node-1")
    assert node["metadata"]["labels"]["added-by"] == "admin"
    assert node["metadata"]["labels"]["shoal.io/runtime"] == "exec"
    assert node["spec"]["unschedulable"] is True  # the agent never touches the spec
    assert node["status"]["nodeInfo"]["operatingSystem"] == "linux"
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    assert conditions["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"  # a restart is no transition
    assert conditions["Ready"]["lastHeartbeatTime"] > "2020"
    assert conditions["DiskPressure"]["status"] == "False"  # not ours: kept


async def test_lease_is_renewed(harness: Harness) -> None:
    renewals: list[str] = []
    async with harness.running():
        async with asyncio.timeout(5):
            async for event in harness.client.watch(
                LEASE, LEASE_NAMESPACE, field_selector="metadata.name=node-1"
            ):
                spec = event.object["spec"]
                assert spec["holderIdentity"] == "node-1"
                assert spec["leaseDurationSeconds"] == 10
                renewals.append(spec["renewTime"])
                if len(renewals) == 3:
                    break
    assert len(set(renewals)) == 3  # each renewal moved renewTime


async def test_ready_heartbeat_is_refreshed_and_transition_kept(harness: Harness) -> None:
    async with harness.running() as agent:
        await asyncio.wait_for(agent.node.registered.wait(), 5)
        first = await harness.client.get(NODE, "node-1")
        async with asyncio.timeout(5):
            async for event in harness.client.watch(
                NODE, resource_version=first["metadata"]["resourceVersion"]
            ):
                (ready,) = [c for c in event.object["status"]["conditions"] if c["type"] == "Ready"]
                (old,) = [c for c in first["status"]["conditions"] if c["type"] == "Ready"]
                assert ready["lastTransitionTime"] == old["lastTransitionTime"]
                break
