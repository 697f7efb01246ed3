"""`shoal init --ha`: each manager runs an etcd member beside it (Debian's etcd), and each
`shoal join --manager` adds one. Three managers on loopback; one killed with its member, the
other two keep the quorum; started again, it rejoins and catches up."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shoal.client.kubeconfig import read as read_kubeconfig
from shoal.security.tls import client_context_from_pem
from tests.conftest import SHOAL
from tests.e2e import test_ha
from tests.e2e.test_cluster import free_port
from tests.etcd_cluster import require_etcd
from tests.helpers import LineReader, processes_with, wait_until


@dataclass
class Manager(test_ha.Manager):
    """A manager with its etcd member's ports."""

    client_port: int = 0
    peer_port: int = 0

    def start(self, command: list[str]) -> None:
        argv = [SHOAL, *command, "--data-dir", str(self.data_dir), "--listen", self.listen]
        argv += ["--name", self.name, "--no-agent"]
        argv += ["--etcd-client-port", str(self.client_port), "--etcd-peer-port", str(self.peer_port)]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        LineReader(self.process.stdout).wait_for(lambda line: "ready at" in line, timeout=60)

    def member_processes(self) -> list[int]:
        return processes_with(str(self.data_dir / "etcd"))

    def http(self) -> httpx.Client:
        creds = read_kubeconfig(self.data_dir / "kubeconfig").credentials
        verify = client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem)
        return httpx.Client(base_url=self.url, verify=verify, timeout=15)

    def shoal(self, *args: str) -> str:
        env = {"SHOAL_KUBECONFIG": str(self.data_dir / "kubeconfig"), "PATH": "/usr/bin:/bin"}
        done = subprocess.run([SHOAL, *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout


@dataclass
class Managers:
    all: dict[str, Manager] = field(default_factory=dict)

    def etcdctl(self, *args: str) -> Any:
        endpoints = ",".join(f"127.0.0.1:{m.client_port}" for m in self.all.values())
        done = subprocess.run(
            ["etcdctl", "--endpoints", endpoints, "-w", "json", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def managers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Managers]:
    require_etcd()
    root = tmp_path_factory.mktemp("ha-embedded")
    found = Managers()
    for index in (1, 2, 3):
        name = f"manager-{index}"
        listen = f"127.0.0.1:{free_port()}"
        found.all[name] = Manager(name, root / name, listen, client_port=free_port(), peer_port=free_port())
    try:
        first = found.all["manager-1"]
        first.start(["init", "--ha"])
        token = first.shoal("token", "show", "manager").strip()
        found.all["manager-2"].start(["join", "--manager", first.url, "--token", token])
        found.all["manager-3"].start(["join", "--manager", found.all["manager-2"].url, "--token", token])
        yield found
    finally:
        for manager in found.all.values():
            if manager.process is not None and manager.process.poll() is None:
                manager.process.terminate()
        for manager in found.all.values():
            if manager.process is not None:
                try:
                    manager.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    manager.process.kill()
                    manager.process.wait()
            assert not manager.member_processes(), f"{manager.name}'s etcd member outlived it"


def test_each_manager_adds_a_member_and_two_keep_the_quorum(managers: Managers) -> None:
    members = managers.etcdctl("member", "list")["members"]
    assert sorted(m["name"] for m in members) == ["manager-1", "manager-2", "manager-3"]
    assert all(m.member_processes() for m in managers.all.values())

    first = managers.all["manager-1"]
    holder = re.search(r"^(manager-\d)\s+Ready\s+Drain\s+Leader$", first.shoal("node", "ls"), re.MULTILINE)
    assert holder, first.shoal("node", "ls")
    victim = managers.all[holder.group(1)]
    others = [m for m in managers.all.values() if m is not victim]

    assert victim.process is not None
    victim.process.kill()  # kill -9: its member goes with it (PR_SET_PDEATHSIG)
    victim.process.wait()
    wait_until(lambda: not victim.member_processes(), timeout=10, what="the member gone with its manager")

    # Two members of three are a quorum: every other manager still writes.
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "while-one-is-down"}}

    def created() -> bool:
        with others[0].http() as http:
            return http.post("/api/v1/namespaces/default/configmaps", json=body).status_code == 201

    wait_until(created, timeout=15, interval=0.5, what="a write with one member down")
    with others[1].http() as http:
        assert http.get("/api/v1/namespaces/default/configmaps/while-one-is-down").status_code == 200
    wait_until(
        lambda: (
            re.search(r"\s+Leader$", others[0].shoal("node", "ls"), re.MULTILINE)
            and victim.name
            not in [
                line.split()[0] for line in others[0].shoal("node", "ls").splitlines() if "Leader" in line
            ]
        ),
        timeout=15,
        interval=0.5,
        what="another manager leading",
    )

    # Started again on its data dir, the manager restarts its member, which catches up.
    victim.start(["init"])
    assert victim.member_processes()
    # It now reaches the store through every member, not only those known when it joined.
    remembered = json.loads((victim.data_dir / "etcd-member.json").read_text())["store_url"]
    assert sorted(remembered.removeprefix("etcd://").split(",")) == sorted(
        f"127.0.0.1:{m.client_port}" for m in managers.all.values()
    )
    health = managers.etcdctl("endpoint", "health")
    assert all(h["health"] for h in health), health
    with victim.http() as http:
        assert http.get("/api/v1/namespaces/default/configmaps/while-one-is-down").status_code == 200
