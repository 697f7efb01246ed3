"""A real cluster on loopback: `shoal init` (manager with a local agent) and two `shoal join`
agents, each a separate OS process, running real processes as containers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SHOAL
from tests.helpers import LineReader, kube_http, processes_with, ready, running, wait_until

MARKER = f"shoal-e2e-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to find and clean them up
NODE_GRACE = 10.0  # the node lifecycle controller's default


@dataclass
class Cluster:
    url: str
    token: str
    data_dir: Path
    manager: subprocess.Popen[str]
    agents: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "manager" / "kubeconfig"  # the admin's, written by `shoal init`

    def http(self) -> httpx.Client:
        return kube_http(self.kubeconfig, timeout=10)

    def get(self, path: str) -> Any:
        with self.http() as http:
            response = http.get(path)
        response.raise_for_status()
        return response.json()

    def request(self, method: str, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
        with self.http() as http:
            response = http.request(method, path, json=body, headers=headers)
        assert response.status_code < 300, response.text
        return response.json()

    def join(self, name: str) -> None:
        proc = subprocess.Popen(
            [
                SHOAL,
                "join",
                self.url,
                "--token",
                self.token,
                "--name",
                name,
                "--data-dir",
                str(self.data_dir / name),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        LineReader(proc.stdout).wait_for(lambda line: "joined the cluster" in line, timeout=30)
        self.agents[name] = proc

    def ready_nodes(self) -> set[str]:
        return ready(self.get("/api/v1/nodes")["items"])

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/api/v1/namespaces/default/pods?labelSelector={selector}")[
            "items"
        ]
        return items

    def running(self, selector: str) -> list[dict[str, Any]]:
        return running(self.pods(selector))


def workload_pids() -> list[int]:
    return processes_with(MARKER)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_manager(data_dir: Path, listen: str) -> tuple[subprocess.Popen[str], str, str]:
    """`shoal init` on ``listen`` (a fixed address: joined agents must find it again after a
    restart); returns the process, its URL and the join token."""
    manager = subprocess.Popen(
        [SHOAL, "init", "--data-dir", str(data_dir / "manager"), "--listen", listen, "--name", "node-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = LineReader(manager.stdout)
    url_line = output.wait_for(lambda line: "manager ready at" in line, timeout=30)
    token_line = output.wait_for(lambda line: "shoal join" in line, timeout=10)
    url = re.search(r"(https://[^\s;]+)", url_line)
    token = re.search(r"--token (\S+)", token_line)
    assert url and token, (url_line, token_line)
    return manager, url.group(1), token.group(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cluster")
    manager, url, token = start_manager(data_dir, f"127.0.0.1:{free_port()}")
    found = Cluster(url, token, data_dir, manager)
    try:
        found.join("node-2")
        found.join("node-3")
        wait_until(
            lambda: found.ready_nodes() == {"node-1", "node-2", "node-3"}, timeout=30, what="3 Ready nodes"
        )
        yield found
    finally:
        for proc in [*found.agents.values(), found.manager]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for pid in workload_pids():  # workloads outlive their agents by design
            os.kill(pid, signal.SIGKILL)


def sleeper(name: str, replicas: int, marker: str = MARKER) -> dict[str, Any]:
    """A Deployment of processes that sleep, each with ``marker`` in its argv (to find them)."""
    labels = {"app": name}
    command = [sys.executable, "-c", "import time; time.sleep(3600)", marker]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "none", "command": command}]},
            },
        },
    }


def test_spread_restart_and_node_failure(cluster: Cluster) -> None:
    cluster.request("POST", "/apis/apps/v1/namespaces/default/deployments", sleeper("web", 6))
    wait_until(lambda: len(cluster.running("app=web")) == 6, timeout=30, what="6 running pods")
    per_node: dict[str, int] = {}
    for pod in cluster.running("app=web"):
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    assert per_node == {"node-1": 2, "node-2": 2, "node-3": 2}
    assert len(workload_pids()) == 6

    # A container killed from outside is restarted in place.
    os.kill(workload_pids()[0], signal.SIGKILL)
    wait_until(
        lambda: (
            any(
                s["restartCount"] >= 1
                for p in cluster.running("app=web")
                for s in p["status"].get("containerStatuses", [])
            )
            and len(workload_pids()) == 6
        ),
        timeout=30,
        what="the killed container restarted",
    )

    # An agent killed: after the grace period its pods run on the other nodes.
    cluster.agents["node-3"].kill()
    cluster.agents["node-3"].wait()
    killed = time.monotonic()

    def moved() -> bool:
        running = cluster.running("app=web")
        return len(running) == 6 and all(p["spec"]["nodeName"] != "node-3" for p in running)

    wait_until(moved, timeout=NODE_GRACE + 20, what="node-3's pods replaced on other nodes")
    replaced_after = time.monotonic() - killed
    assert replaced_after < NODE_GRACE + 15, f"replacement took {replaced_after:.1f}s"

    # The agent comes back: the node is Ready again, its stale pods are stopped, none is duplicated.
    cluster.join("node-3")
    wait_until(lambda: "node-3" in cluster.ready_nodes(), timeout=30, what="node-3 Ready again")
    wait_until(lambda: len(workload_pids()) == 6, timeout=30, what="node-3's stale processes stopped")
    assert len(cluster.running("app=web")) == 6

    # Scale up across the cluster, then down to nothing: every process follows.
    cluster.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 12}})
    wait_until(
        lambda: len(cluster.running("app=web")) == 12 and len(workload_pids()) == 12,
        timeout=30,
        what="12 running pods",
    )
    cluster.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 0}})
    wait_until(lambda: not cluster.pods("app=web") and not workload_pids(), timeout=30, what="scaled to 0")

    # Deleting the Deployment cascades to its pods and their processes.
    cluster.request("DELETE", "/apis/apps/v1/namespaces/default/deployments/web", None)
    wait_until(
        lambda: not cluster.pods("app=web") and not workload_pids(), timeout=30, what="everything gone"
    )


def test_a_job_of_five_completions_two_at_a_time_completes(cluster: Cluster) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(0.3)", MARKER]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "five"},
        "spec": {
            "completions": 5,
            "parallelism": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "step", "image": "none", "command": command}],
                }
            },
        },
    }
    cluster.request("POST", "/apis/batch/v1/namespaces/default/jobs", job)

    def complete() -> dict[str, Any] | None:
        status = cluster.get("/apis/batch/v1/namespaces/default/jobs/five").get("status", {})
        assert status.get("active", 0) <= 2, status
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions", []))
        return status if done else None

    status = wait_until(complete, timeout=60, what="the Job to complete")
    assert status["succeeded"] == 5 and not status.get("failed")


def test_a_daemon_set_covers_a_node_that_joins_later(cluster: Cluster) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(3600)", MARKER]
    labels = {"app": "agent"}
    daemon = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "d", "image": "none", "command": command}]},
            },
        },
    }
    cluster.request("POST", "/apis/apps/v1/namespaces/default/daemonsets", daemon)

    def nodes_covered() -> set[str]:
        return {p["spec"]["nodeName"] for p in cluster.running("app=agent")}

    wait_until(lambda: nodes_covered() == cluster.ready_nodes(), timeout=30, what="a daemon pod per node")
    before = len(cluster.ready_nodes())
    cluster.join("node-4")
    wait_until(lambda: "node-4" in nodes_covered(), timeout=30, what="a daemon pod on the new node")
    assert len(cluster.running("app=agent")) == before + 1
    cluster.request("DELETE", "/apis/apps/v1/namespaces/default/daemonsets/agent", None)
    wait_until(lambda: not cluster.pods("app=agent"), timeout=30, what="the daemon pods gone")


def test_a_manager_killed_and_restarted_loses_nothing_and_duplicates_nothing(cluster: Cluster) -> None:
    cluster.request("POST", "/apis/apps/v1/namespaces/default/deployments", sleeper("steady", 6))
    wait_until(lambda: len(cluster.running("app=steady")) == 6, timeout=30, what="6 running pods")
    before = {p["metadata"]["name"] for p in cluster.running("app=steady")}
    processes = len(workload_pids())

    cluster.manager.kill()  # kill -9: the API, the control plane and node-1's agent all at once
    cluster.manager.wait()
    cluster.manager, url, _token = start_manager(cluster.data_dir, cluster.url.removeprefix("https://"))
    assert url == cluster.url

    wait_until(lambda: len(cluster.ready_nodes()) >= 3, timeout=30, what="the nodes Ready again")
    deployment = cluster.get("/apis/apps/v1/namespaces/default/deployments/steady")
    assert deployment["spec"]["replicas"] == 6
    wait_until(lambda: len(cluster.running("app=steady")) == 6, timeout=30, what="6 running pods again")
    assert {p["metadata"]["name"] for p in cluster.running("app=steady")} == before  # the same pods
    assert len(cluster.pods("app=steady")) == 6  # and no others
    assert len(workload_pids()) == processes  # node-1's new agent adopted its processes

    cluster.request("DELETE", "/apis/apps/v1/namespaces/default/deployments/steady", None)
    wait_until(lambda: not cluster.pods("app=steady"), timeout=30, what="the pods gone")
