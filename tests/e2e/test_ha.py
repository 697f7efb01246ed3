"""High availability with real processes: three etcd members, three managers (`shoal init
--store etcd://…` and two `shoal join --manager`), three agents (`shoal join`), all on loopback.

- `kill -9` of the leading manager while a client keeps creating objects: another manager
  leads within 8 s, every acknowledged create is there, the Deployment's pods are the same
  twelve (none lost, none duplicated) and never fewer than twelve were running.
- two of three etcd members killed: writes are refused with a 503 that says why, the pods
  keep running; the members restarted, the cluster converges (writes work, a scale-up runs).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.client.kubeconfig import read as read_kubeconfig
from shoal.security.tls import client_context_from_pem
from tests.conftest import SHOAL
from tests.e2e.test_cluster import free_port, sleeper
from tests.etcd_cluster import EtcdCluster
from tests.helpers import LineReader, processes_with, ready, running, wait_until

MARKER = f"shoal-ha-{uuid.uuid4().hex[:12]}"  # in every workload's argv
NODE_GRACE = 10.0
TAKEOVER_LIMIT = 8.0  # the bound: a new leader within 8 s of the kill
COMPONENT_LEASES = ("shoal-controllers", "shoal-scheduler")


@dataclass
class Manager:
    name: str
    data_dir: Path
    listen: str
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.listen}"


@dataclass
class HACluster:
    root: Path
    etcd: EtcdCluster
    managers: dict[str, Manager] = field(default_factory=dict)
    agents: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    worker_token: str = ""
    manager_token: str = ""

    # -- processes ---------------------------------------------------------------------------

    def start_first_manager(self, name: str) -> None:
        manager = Manager(name, self.root / name, f"127.0.0.1:{free_port()}")
        self.managers[name] = manager
        self._run_manager(manager, ["init", "--store", self.etcd.url])
        self.worker_token = self.shoal("token", "show", "worker").stdout.strip()
        self.manager_token = self.shoal("token", "show", "manager").stdout.strip()

    def join_manager(self, name: str, via: str) -> None:
        manager = Manager(name, self.root / name, f"127.0.0.1:{free_port()}")
        self.managers[name] = manager
        self._run_manager(
            manager, ["join", "--manager", self.managers[via].url, "--token", self.manager_token]
        )

    def restart_manager(self, name: str) -> None:
        """A manager started again on its data dir and address: it remembers its shared store."""
        self._run_manager(self.managers[name], ["init"])

    def _run_manager(self, manager: Manager, command: list[str]) -> None:
        argv = [SHOAL, *command, "--data-dir", str(manager.data_dir), "--listen", manager.listen]
        argv += ["--name", manager.name, "--no-agent"]
        manager.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        LineReader(manager.process.stdout).wait_for(lambda line: "ready at" in line, timeout=30)

    def kill_manager(self, name: str) -> None:
        process = self.managers[name].process
        assert process is not None
        process.kill()  # SIGKILL: no lease is released, no request finished
        process.wait()

    def join_agent(self, name: str, via: str) -> None:
        argv = [SHOAL, "join", self.managers[via].url, "--token", self.worker_token, "--name", name]
        argv += ["--data-dir", str(self.root / name)]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        LineReader(process.stdout).wait_for(lambda line: "joined the cluster" in line, timeout=30)
        self.agents[name] = process

    def agent_knows_every_manager(self, name: str) -> bool:
        saved = self.root / name / f"agent-{name}" / "managers.json"
        return saved.exists() and all(m.url in saved.read_text() for m in self.managers.values())

    def shoal(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "SHOAL_KUBECONFIG": str(self.kubeconfig)}
        done = subprocess.run([SHOAL, *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done

    # -- the API, through whichever manager answers ------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig of a manager that runs (each manager writes one for itself)."""
        return self.alive()[0].data_dir / "kubeconfig"

    def alive(self) -> list[Manager]:
        return [m for m in self.managers.values() if m.process is not None and m.process.poll() is None]

    def http(self, manager: Manager, timeout: float = 10.0) -> httpx.Client:
        creds = read_kubeconfig(self.kubeconfig).credentials
        verify = client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem)
        return httpx.Client(base_url=manager.url, verify=verify, timeout=timeout)

    def get(self, path: str) -> Any:
        for manager in self.alive():
            try:
                with self.http(manager) as http:
                    response = http.get(path)
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                return response.json()
        raise AssertionError(f"no manager answered GET {path}")

    def request(self, method: str, path: str, body: Any) -> httpx.Response:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
        with self.http(self.alive()[0], timeout=30) as http:
            return http.request(method, path, json=body, headers=headers)

    def holders(self) -> dict[str, str]:
        """Lease → the manager holding it (by the identity's name part)."""
        held = {}
        for lease in COMPONENT_LEASES:
            spec = self.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}")["spec"]
            held[lease] = str(spec.get("holderIdentity") or "").split("_", 1)[0]
        return held

    def running(self, selector: str) -> list[dict[str, Any]]:
        return running(self.get(f"/api/v1/namespaces/default/pods?labelSelector={selector}")["items"])

    def wait_for_listing(self, name: str, status: str, manager_status: str) -> None:
        """Until `shoal node ls` shows manager ``name`` with that STATUS and MANAGER STATUS."""
        row = re.compile(rf"^{name}\s+{status}\s+Drain\s+{manager_status}$", re.MULTILINE)
        wait_until(
            lambda: row.search(self.shoal("node", "ls").stdout),
            timeout=30,
            interval=1,
            what=f"{name} listed {status} and {manager_status}",
        )

    def ready_nodes(self) -> set[str]:
        return ready(self.get("/api/v1/nodes")["items"])

    def close(self) -> None:
        processes = [*self.agents.values(), *(m.process for m in self.managers.values() if m.process)]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in processes_with(MARKER):  # workloads outlive their agents by design
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HACluster]:
    root = tmp_path_factory.mktemp("ha")
    etcd = EtcdCluster.start(root / "etcd", members=3)
    cluster = HACluster(root, etcd)
    try:
        cluster.start_first_manager("manager-1")
        cluster.join_manager("manager-2", via="manager-1")
        cluster.join_manager("manager-3", via="manager-2")
        for index in (1, 2, 3):
            cluster.join_agent(f"worker-{index}", via="manager-1")
        wait_until(
            lambda: cluster.ready_nodes() == {"worker-1", "worker-2", "worker-3"},
            timeout=30,
            what="3 Ready workers",
        )
        yield cluster
    finally:
        cluster.close()
        etcd.close()


class Creator(threading.Thread):
    """Creates ConfigMaps one after another through any manager that answers, moving on when
    one stops; remembers every create the API acknowledged (201)."""

    def __init__(self, cluster: HACluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        managers = list(self.cluster.managers.values())
        current, counter = 0, 0
        while not self.stop.is_set():
            name = f"cm-{counter}"
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": name}}
            try:
                with self.cluster.http(managers[current], timeout=5) as http:
                    response = http.post("/api/v1/namespaces/default/configmaps", json=body)
            except httpx.TransportError:
                current = (current + 1) % len(managers)  # that manager is gone: the next one
                counter += 1  # the outcome is unknown: never reuse the name
                continue
            counter += 1
            if response.status_code == 201:
                self.acknowledged.append(name)


class Sampler(threading.Thread):
    """Counts the Deployment's running pods and the Ready nodes every half second; notes the
    longest time either was short."""

    def __init__(self, cluster: HACluster, selector: str, replicas: int, nodes: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.selector, self.replicas, self.nodes = cluster, selector, replicas, nodes
        self.longest_dip = 0.0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        dip_started: float | None = None
        while not self.stop.wait(0.5):  # a sampling period
            try:
                short = (
                    len(self.cluster.running(self.selector)) < self.replicas
                    or len(self.cluster.ready_nodes()) < self.nodes
                )
            except AssertionError:
                continue  # no manager answered this round
            self.samples += 1
            now = time.monotonic()
            if short:
                dip_started = dip_started if dip_started is not None else now
                self.longest_dip = max(self.longest_dip, now - dip_started)
            else:
                dip_started = None


def test_killing_the_leading_manager_loses_nothing(ha: HACluster) -> None:
    created = ha.request("POST", "/apis/apps/v1/namespaces/default/deployments", sleeper("web", 12, MARKER))
    assert created.status_code == 201, created.text
    wait_until(lambda: len(ha.running("app=web")) == 12, timeout=60, what="12 running pods")
    before = sorted(p["metadata"]["name"] for p in ha.running("app=web"))
    for name in ha.agents:  # the agents learnt every manager, so any may go
        wait_until(
            lambda name=name: ha.agent_knows_every_manager(name), timeout=30, what=f"{name}'s managers"
        )

    # The first manager holds every Lease until it fails, and the agents joined through it:
    # killing it makes the control plane move and every agent fail over.
    leader = ha.holders()["shoal-controllers"]
    assert leader == "manager-1"
    listed = ha.shoal("node", "ls").stdout
    assert re.search(rf"^{leader}\s+Ready\s+Drain\s+Leader", listed, re.MULTILINE), listed

    creator, sampler = Creator(ha), Sampler(ha, "app=web", 12, nodes=3)
    creator.start()
    sampler.start()
    wait_until(lambda: len(creator.acknowledged) >= 20, timeout=30, what="creates before the kill")
    ha.kill_manager(leader)
    killed = time.monotonic()

    def new_leader() -> bool:
        try:
            holders = ha.holders()
        except AssertionError:
            return False
        return all(holder not in ("", leader) for holder in holders.values())

    wait_until(new_leader, timeout=20, interval=0.1, what="another manager holding every lease")
    takeover = time.monotonic() - killed
    acknowledged_at_takeover = len(creator.acknowledged)
    wait_until(
        lambda: len(creator.acknowledged) >= acknowledged_at_takeover + 20, timeout=30, what="creates after"
    )
    creator.stop.set()
    creator.join()
    assert takeover < TAKEOVER_LIMIT, f"the new leader took {takeover:.1f}s"

    stored = {cm["metadata"]["name"] for cm in ha.get("/api/v1/namespaces/default/configmaps")["items"]}
    lost = [name for name in creator.acknowledged if name not in stored]
    assert not lost, f"acknowledged creates missing after the failover: {lost}"

    # The same twelve pods, each one process: none lost, none duplicated.
    assert sorted(p["metadata"]["name"] for p in ha.running("app=web")) == before
    assert len(processes_with(MARKER)) == 12

    # The new leader still manages: a scale-up is carried out.
    scaled = ha.request(
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 14}}
    )
    assert scaled.status_code == 200, scaled.text
    wait_until(lambda: len(ha.running("app=web")) == 14, timeout=30, what="14 running pods")

    # Past the new leader's node grace period, had an agent not failed over, its node would be
    # NotReady and its pods lost: the sampler watches that window, and no node or pod is lost.
    window_end = killed + takeover + NODE_GRACE + 2
    wait_until(
        lambda: time.monotonic() > window_end, timeout=NODE_GRACE + 30, interval=0.5, what="the window"
    )
    sampler.stop.set()
    sampler.join()
    assert sampler.samples > 0 and sampler.longest_dip < NODE_GRACE, sampler.longest_dip
    assert ha.ready_nodes() == {"worker-1", "worker-2", "worker-3"}
    # Still the twelve (and the two new ones), each one process.
    assert set(before) <= {p["metadata"]["name"] for p in ha.running("app=web")}
    assert len(processes_with(MARKER)) == 14

    # Its own Lease ages out: `node ls` shows it Down and Unreachable; started again, Reachable.
    ha.wait_for_listing(leader, "Down", "Unreachable")
    ha.restart_manager(leader)  # back, as a follower
    ha.wait_for_listing(leader, "Ready", "Reachable")


def test_quorum_loss_refuses_writes_and_keeps_pods_running(ha: HACluster) -> None:
    wait_until(lambda: len(ha.running("app=web")) >= 12, timeout=30, what="the workload from before")
    replicas = len(ha.running("app=web"))
    pids = sorted(processes_with(MARKER))
    for member in ha.etcd.members[1:]:
        member.kill()

    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "during-outage"}}
    started = time.monotonic()
    refused = ha.request("POST", "/api/v1/namespaces/default/configmaps", body)
    assert refused.status_code == 503, refused.text
    assert time.monotonic() - started < 15
    status = refused.json()
    assert status["kind"] == "Status" and status["reason"] == "ServiceUnavailable"
    assert "etcd" in status["message"] and "quorum" in status["message"], status["message"]

    # The workloads do not notice: past the node grace period, the same processes run.
    deadline = time.monotonic() + NODE_GRACE + 2
    while time.monotonic() < deadline:
        assert sorted(processes_with(MARKER)) == pids
        time.sleep(0.5)  # sampling the process table over the outage, not waiting for an event

    for member in ha.etcd.members[1:]:
        member.start()
    ha.etcd.wait_healthy()

    def writes_again() -> bool:
        return ha.request("POST", "/api/v1/namespaces/default/configmaps", body).status_code == 201

    wait_until(writes_again, timeout=30, interval=0.5, what="writes accepted again")
    stored = ha.get("/api/v1/namespaces/default/configmaps/during-outage")
    assert stored["metadata"]["name"] == "during-outage"  # written once, after the outage

    # Converged: every node Ready, the same pods, and the control plane acts again.
    wait_until(
        lambda: ha.ready_nodes() == {"worker-1", "worker-2", "worker-3"}, timeout=30, what="nodes Ready"
    )
    assert sorted(processes_with(MARKER)) == pids
    scaled = ha.request(
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": replicas + 2}}
    )
    assert scaled.status_code == 200, scaled.text
    wait_until(
        lambda: len(ha.running("app=web")) == replicas + 2, timeout=30, what="the scale-up after the outage"
    )
