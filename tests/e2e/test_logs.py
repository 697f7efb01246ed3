"""`shoal logs` and `kubectl logs` on a real one-node cluster (`shoal init`): the manager
proxies the Pod log subresource from the agent's endpoint, workloads are real processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SHOAL
from tests.helpers import LineReader, kube_http, processes_with, wait_until

MARKER = f"shoal-e2e-logs-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to clean them up


@dataclass
class Cluster:
    url: str
    data_dir: Path
    manager: subprocess.Popen[str]

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def http(self) -> httpx.Client:
        """A client with the kubeconfig's credentials (the admin's client certificate)."""
        return kube_http(self.kubeconfig, timeout=10)

    def get(self, path: str) -> Any:
        with self.http() as http:
            response = http.get(path)
        response.raise_for_status()
        return response.json()

    def create_pod(self, name: str, containers: dict[str, str]) -> None:
        """A pod of one ``python -c CODE MARKER`` container per name."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": c, "image": "none", "command": [sys.executable, "-c", code, MARKER]}
                    for c, code in containers.items()
                ],
            },
        }
        with self.http() as http:
            response = http.post("/api/v1/namespaces/default/pods", json=body)
        assert response.status_code == 201, response.text

    def wait_running(self, name: str) -> None:
        def running() -> bool:
            pod = self.get(f"/api/v1/namespaces/default/pods/{name}")
            return bool(pod.get("status", {}).get("phase") == "Running")

        wait_until(running, timeout=30, what=f"pod {name} running")

    def shoal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SHOAL, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def logs_text(self, name: str) -> str:
        result = self.shoal("logs", name)
        assert result.returncode == 0, result.stderr
        return result.stdout


def workload_pids() -> list[int]:
    return processes_with(MARKER)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("logs") / "manager"
    manager = subprocess.Popen(
        [SHOAL, "init", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", "--name", "node-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url_line = LineReader(manager.stdout).wait_for(lambda line: "manager ready at" in line, timeout=30)
        url = re.search(r"(https://[^\s;]+)", url_line)
        assert url, url_line
        found = Cluster(url.group(1), data_dir, manager)

        def endpoint_reported() -> bool:
            nodes = found.get("/api/v1/nodes")["items"]
            return any(n.get("status", {}).get("daemonEndpoints", {}).get("kubeletEndpoint") for n in nodes)

        wait_until(endpoint_reported, timeout=30, what="node-1 reporting its log endpoint")
        yield found
    finally:
        if manager.poll() is None:
            manager.terminate()
            try:
                manager.wait(timeout=10)
            except subprocess.TimeoutExpired:
                manager.kill()
        for pid in workload_pids():  # workloads outlive their agents by design
            os.kill(pid, signal.SIGKILL)


def talker(go: Path) -> str:
    """Prints three lines, then "after" once ``go`` exists (the test creates it)."""
    return (
        "import os, time\n"
        "for word in ('one', 'two', 'three'): print(word, flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('after', flush=True)\n"
        "time.sleep(3600)\n"
    )


def test_shoal_logs(cluster: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    cluster.create_pod("talk", {"main": talker(go)})
    cluster.wait_running("talk")
    wait_until(lambda: cluster.logs_text("talk") == "one\ntwo\nthree\n", timeout=30, what="three lines")

    tail = cluster.shoal("logs", "talk", "--tail", "1", "-c", "main", "-n", "default")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout == "three\n"

    follow = subprocess.Popen(
        [SHOAL, "--kubeconfig", str(cluster.kubeconfig), "logs", "-f", "talk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        reader = LineReader(follow.stdout)
        reader.wait_for(lambda line: line == "three", timeout=30)
        go.touch()
        reader.wait_for(lambda line: line == "after", timeout=30)
        assert follow.poll() is None  # still following the running container
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_multi_container_pod_needs_a_container(cluster: Cluster) -> None:
    code = "print('hello from {}', flush=True); import time; time.sleep(3600)"
    cluster.create_pod("pair", {"a": code.format("a"), "b": code.format("b")})
    cluster.wait_running("pair")
    result = cluster.shoal("logs", "pair")
    assert result.returncode == 1
    assert "a container name must be specified for pod pair, choose one of: [a b]" in result.stderr
    wait_until(
        lambda: cluster.shoal("logs", "pair", "-c", "b").stdout == "hello from b\n",
        timeout=30,
        what="the logs of container b",
    )
    missing = cluster.shoal("logs", "ghost")
    assert missing.returncode == 1 and "ghost" in missing.stderr


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_logs(cluster: Cluster) -> None:
    cluster.create_pod(
        "greet", {"main": "print('hi from kubectl', flush=True); import time; time.sleep(3600)"}
    )
    cluster.wait_running("greet")

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    wait_until(
        lambda: kubectl("logs", "greet").stdout == "hi from kubectl\n", timeout=30, what="kubectl logs"
    )
    assert kubectl("logs", "greet", "--tail", "1").stdout == "hi from kubectl\n"
    result = kubectl("logs", "pod/greet", "-c", "nope")
    assert result.returncode != 0 and "container nope is not valid for pod greet" in result.stderr
