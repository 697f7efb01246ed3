"""Container configuration from the API: env from ConfigMaps, Secrets and the pod's fields."""

from __future__ import annotations

import base64
import json
import sys

from shoal.agent.env import expand
from shoal.api.kinds.configmap import CONFIG_MAP
from shoal.api.kinds.secret import SECRET
from tests.unit.agent.test_agent_harness import Harness, cleanup, container, harness, state

__all__ = ["harness"]

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


async def create_sources(harness: Harness) -> None:
    await harness.client.create(
        CONFIG_MAP,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"color": "blue"},
        },
    )
    password = base64.b64encode(b"s3cret").decode()
    await harness.client.create(
        SECRET,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"password": password}},
    )


async def logged_env(harness: Harness, pod_name: str) -> dict[str, str]:
    pod = await harness.wait_pod(pod_name, lambda p: p["status"]["phase"] == "Succeeded", "Succeeded")
    assert harness.agent is not None
    cid = container(pod)["containerID"].removeprefix("exec://")
    text = b"".join([line async for line in harness.agent.runtime.logs(cid)])
    env: dict[str, str] = json.loads(text)
    return env


async def test_env_from_configmap_secret_and_fields(harness: Harness) -> None:
    await create_sources(harness)
    env = [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "GREETING", "value": "$(COLOR) sky, $$(COLOR)"},
        {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}},
    ]
    async with harness.running():
        await harness.create_pod(
            "env", [sys.executable, "-c", PRINT_ENV], restartPolicy="Never", container={"env": env}
        )
        got = await logged_env(harness, "env")
        assert got["COLOR"] == "blue"
        assert got["PASSWORD"] == "s3cret"
        assert got["POD"] == "env"
        assert got["NODE"] == "node-1"
        assert got["IP"] == "127.0.0.1"
        assert got["GREETING"] == "blue sky, $(COLOR)"
        assert "MAYBE" not in got
        await cleanup(harness, "env")


async def test_missing_configmap_waits_then_runs(harness: Harness) -> None:
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}}]
    async with harness.running():
        await harness.create_pod(
            "env", [sys.executable, "-c", PRINT_ENV], restartPolicy="Never", container={"env": env}
        )
        pod = await harness.wait_pod(
            "env",
            lambda p: "waiting" in state(p) and state(p)["waiting"]["reason"] != "ContainerCreating",
            "error",
        )
        assert state(pod)["waiting"] == {
            "reason": "CreateContainerConfigError",
            "message": 'configmap "settings" not found',
        }
        assert pod["status"]["phase"] == "Pending"
        await create_sources(harness)
        assert (await logged_env(harness, "env"))["COLOR"] == "blue"
        await cleanup(harness, "env")


async def test_unsupported_source_is_refused_clearly(harness: Harness) -> None:
    env = [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
    async with harness.running():
        await harness.create_pod("env", ["sleep", "1000"], container={"env": env})
        pod = await harness.wait_pod("env", lambda p: "CreateContainerConfigError" in str(state(p)), "error")
        assert "resourceFieldRef is not supported" in state(pod)["waiting"]["message"]
        await cleanup(harness, "env")


def test_expand() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(", {"A": "1"}) == "1-$(B)-$(A)-$("
