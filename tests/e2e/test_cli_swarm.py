"""Docker Swarm's commands (`shoal service ...`, `shoal node ...`, `shoal ps`) run as users run
them, against a real two-node cluster: `shoal init` (node-1) and one `shoal join` (node-2)."""

from __future__ import annotations

import os
import re
import shlex
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
from tests.helpers import LineReader, wait_until

MARKER = f"shoal-swarm-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to kill leftovers
SLEEPER = shlex.join([sys.executable, "-c", "import time; time.sleep(3600)", MARKER])
NODES = {"node-1", "node-2"}


@dataclass
class Cluster:
    url: str
    data_dir: Path
    procs: list[subprocess.Popen[str]]

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def shoal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SHOAL, "--server", self.url, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def ok(self, *args: str) -> str:
        done = self.shoal(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def pods(self, service: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/default/pods?labelSelector=shoal.io/service={service}"
        items: list[dict[str, Any]] = self.get(path)["items"]
        return items

    def running(self, service: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods(service)
            if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]

    def ready_nodes(self) -> set[str]:
        return {
            n["metadata"]["name"]
            for n in self.get("/api/v1/nodes")["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        }


def workload_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if MARKER.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([SHOAL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("swarm")
    manager = _start(
        ["init", "--data-dir", str(data_dir / "m"), "--listen", "127.0.0.1:0", "--name", "node-1"]
    )
    found = Cluster("", data_dir, [manager])
    try:
        lines = LineReader(manager.stdout)
        url = re.search(r"(http://[^\s;]+)", lines.wait_for(lambda s: "manager ready at" in s, timeout=30))
        token = re.search(r"--token (\S+)", lines.wait_for(lambda s: "shoal join" in s, timeout=10))
        assert url and token
        found.url = url.group(1)
        agent = _start(
            [
                "join",
                found.url,
                "--token",
                token.group(1),
                "--name",
                "node-2",
                "--data-dir",
                str(data_dir / "a"),
            ]
        )
        found.procs.append(agent)
        LineReader(agent.stdout).wait_for(lambda s: "joined the cluster" in s, timeout=30)
        wait_until(lambda: found.ready_nodes() == NODES, timeout=30, what="2 Ready nodes")
        yield found
    finally:
        for proc in reversed(found.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for pid in workload_pids():
            os.kill(pid, signal.SIGKILL)


def rows(table: str) -> list[list[str]]:
    """A table's data rows, cut at the header's column starts (cells may be empty)."""
    header, *lines = table.splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s{2}))\S", header)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in lines if line.strip()]


def test_bad_input_is_one_line_and_creates_nothing(cluster: Cluster) -> None:
    cases = [
        ["service", "create", "bad"],  # neither --image nor --command
        ["service", "create", "bad", "--image", "x", "--command", "sleep 1"],
        ["service", "create", "bad", "--command", "sleep 1", "--constraint", "node.colour==red"],
        ["service", "create", "bad", "--command", "sleep 1", "--constraint", "node.hostname=node-1"],
        ["service", "create", "bad", "--command", "sleep 1", "--limit-memory", "lots"],
        ["service", "create", "bad", "--command", "sleep 1", "--placement-pref", "pack=node.labels.x"],
        ["service", "create", "bad", "--command", "sleep 1", "--env", "NOEQUALS"],
        ["service", "create", "bad", "--command", "sleep 1", "--mode", "global", "--replicas", "2"],
        ["service", "scale", "web=lots"],
        ["service", "ps", "nosuch"],
        ["node", "update", "node-2", "--availability", "sideways"],
    ]
    for args in cases:
        done = cluster.shoal(*args)
        assert done.returncode in (1, 2), (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
    assert cluster.get("/apis/apps/v1/namespaces/default/deployments")["items"] == []
    assert cluster.get("/apis/apps/v1/namespaces/default/daemonsets")["items"] == []


def test_replicated_service_lifecycle(cluster: Cluster) -> None:
    out = cluster.ok("service", "create", "web", "--replicas", "4", "--command", SLEEPER, "--no-detach")
    assert "web: 4/4 running" in out, out
    assert len(cluster.running("web")) == 4

    listed = rows(cluster.ok("service", "ls"))
    assert listed[0][:3] == ["web", "replicated", "4/4"] and MARKER in listed[0][3]
    tasks = rows(cluster.ok("service", "ps", "web"))
    assert len(tasks) == 4
    assert all(t[1] in NODES and t[2] == "Running" and t[3].startswith("Running") for t in tasks), tasks
    everywhere = rows(cluster.ok("ps"))
    assert [t[0] for t in everywhere].count("web") == 4

    inspected = cluster.ok("service", "inspect", "web")
    assert '"kind": "Deployment"' in inspected and '"shoal.io/service": "web"' in inspected

    assert "web scaled to 2" in cluster.ok("service", "scale", "web=2")
    wait_until(lambda: len(cluster.pods("web")) == 2, timeout=15, what="2 pods after scale")

    cluster.ok("service", "rm", "web")
    wait_until(lambda: not cluster.pods("web"), timeout=15, what="the service's pods gone")
    assert "web" not in cluster.ok("service", "ls")
    done = cluster.shoal("service", "rm", "web")
    assert done.returncode == 1 and done.stderr.strip() == "error: no such service: web"


def test_constraints_place_or_explain(cluster: Cluster) -> None:
    cluster.ok(
        "service", "create", "pinned", "--replicas", "3", "--command", SLEEPER, "--no-detach",
        "--constraint", "node.hostname==node-2", "--reserve-memory", "16Mi", "--limit-cpu", "0.5",
    )  # fmt: skip
    assert {p["spec"]["nodeName"] for p in cluster.running("pinned")} == {"node-2"}
    container = cluster.pods("pinned")[0]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "0.5"}
    assert container["resources"]["requests"]["memory"] == "16Mi"  # cpu defaults to the limit

    cluster.ok(
        "service", "create", "nowhere", "--command", SLEEPER, "--constraint", "node.labels.zone==mars", "-d"
    )

    def explained() -> list[list[str]]:
        tasks = rows(cluster.ok("service", "ps", "nowhere"))
        return tasks if tasks and "0/2 nodes are available" in tasks[0][4] else []

    tasks = wait_until(explained, timeout=15, what="the scheduler's explanation in service ps")
    assert tasks[0][3].startswith("Pending"), tasks
    cluster.ok("service", "rm", "pinned", "nowhere")
    wait_until(lambda: not cluster.pods("pinned") and not cluster.pods("nowhere"), timeout=15, what="gone")


def test_node_drain_and_labels(cluster: Cluster) -> None:
    nodes = {r[0]: r for r in rows(cluster.ok("node", "ls"))}
    assert set(nodes) == NODES and all(r[1:3] == ["Ready", "Active"] for r in nodes.values())

    cluster.ok("service", "create", "spread", "--replicas", "4", "--command", SLEEPER, "--no-detach")
    assert "node-2" in {p["spec"]["nodeName"] for p in cluster.running("spread")}
    out = cluster.ok("node", "update", "node-2", "--availability", "drain", "--label-add", "zone=b")
    moved = re.search(r"node-2: drained, (\d+) pods? moved", out)
    assert moved and int(moved.group(1)) >= 1, out
    wait_until(
        lambda: len(cluster.running("spread")) == 4 and len(cluster.pods("spread")) == 4,
        timeout=20,
        what="4 pods running again",
    )
    assert {p["spec"]["nodeName"] for p in cluster.running("spread")} == {"node-1"}
    assert {r[0]: r[2] for r in rows(cluster.ok("node", "ls"))}["node-2"] == "Drain"
    assert '"zone": "b"' in cluster.ok("node", "inspect", "node-2")

    cluster.ok("node", "update", "node-2", "--availability", "active", "--label-rm", "zone")
    assert '"zone"' not in cluster.ok("node", "inspect", "node-2")
    done = cluster.shoal("node", "update", "node-2", "--label-rm", "zone")
    assert done.returncode == 1 and done.stderr.startswith("error: key 'zone' doesn't exist"), done.stderr
    cluster.ok("service", "rm", "spread")
    wait_until(lambda: not cluster.pods("spread"), timeout=15, what="spread's pods gone")


def test_global_service_runs_one_per_node(cluster: Cluster) -> None:
    out = cluster.ok("service", "create", "agent", "--mode", "global", "--command", SLEEPER, "--no-detach",
                     "--label", "tier=x")  # fmt: skip
    assert "agent: 2/2 running" in out, out
    assert sorted(p["spec"]["nodeName"] for p in cluster.running("agent")) == sorted(NODES)
    ds = cluster.get("/apis/apps/v1/namespaces/default/daemonsets/agent")
    assert ds["metadata"]["labels"] == {"tier": "x", "shoal.io/service": "agent"}
    assert ds["spec"]["template"]["metadata"]["labels"] == {"shoal.io/service": "agent", "app": "agent"}
    assert rows(cluster.ok("service", "ls"))[0][:3] == ["agent", "global", "2/2"]
    done = cluster.shoal("service", "scale", "agent=3")
    assert (
        done.returncode == 1 and done.stderr == "error: agent: scale can only be used with replicated mode\n"
    )
    cluster.ok("service", "rm", "agent")
    wait_until(lambda: not cluster.pods("agent"), timeout=15, what="agent's pods gone")
    assert cluster.get("/apis/apps/v1/namespaces/default/daemonsets")["items"] == []


def test_failing_service_times_out_with_the_exit_code(cluster: Cluster) -> None:
    done = cluster.shoal(
        "service", "create", "broken", "--command", "false", "--no-detach", "--timeout", "3",
        "--placement-pref", "spread=node.labels.zone",
    )  # fmt: skip
    assert done.returncode == 1 and "broken: 0/1 running" in done.stdout, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: service broken did not converge within 3s (0/1 running)")
    wait_until(
        lambda: rows(cluster.ok("service", "ps", "broken"))[0][4] == "non-zero exit (1)",
        timeout=10,
        what="the exit code in service ps",
    )
    pod = cluster.pods("broken")[0]
    assert pod["metadata"]["annotations"]["shoal.io/placement-preferences"] == '["spread=node.labels.zone"]'
    cluster.ok("service", "rm", "broken")
    wait_until(lambda: not cluster.pods("broken"), timeout=15, what="broken's pods gone")
