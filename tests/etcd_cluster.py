"""Real etcd clusters for tests: members as subprocesses on free 127.0.0.1 ports.

``EtcdCluster.start(tmp_dir, members=3)`` starts the members (data dirs and logs under
``tmp_dir``) and waits until the cluster serves linearizable reads. ``cluster.url`` is the
store URL listing every client endpoint; ``cluster.members[i]`` can be ``kill()``ed (SIGKILL),
``stop()``ped and ``start()``ed again with the same data dir and ports. ``close()`` kills
whatever still runs. Members also die with the test process (``setpriv --pdeathsig KILL``), so
a crashed or interrupted test run leaves no etcd behind.

Timings are shortened for tests (heartbeat 50 ms, election timeout 500 ms): a killed leader is
replaced within about a second.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aetcd import rpc

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
START_TIMEOUT = 30.0
_REQUIRE_LEADER = (("hasleader", "true"),)


def require_etcd() -> None:
    """Skip the test when etcd is not installed, or fail it where it must run (CI)."""
    missing = [path for path in (ETCD, ETCDCTL) if not os.access(path, os.X_OK)]
    if not missing:
        return
    why = f"{' and '.join(missing)} not found (Debian package etcd-server; see scripts/install-system-deps)"
    if os.environ.get("CI") == "true" or os.environ.get("SHOAL_REQUIRE_ETCD") == "1":
        pytest.fail(f"etcd is required here (CI or SHOAL_REQUIRE_ETCD=1): {why}")
    pytest.skip(why)


# SIGKILL the member when the thread that started it exits. Through setpriv (util-linux), not
# a preexec_fn calling prctl: Python code between fork and exec in a process with gRPC's
# threads can deadlock or crash the child.
SETPRIV = shutil.which("setpriv")
DIE_WITH_PARENT = [SETPRIV, "--pdeathsig", "KILL"] if SETPRIV else []


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all sockets held until every port is chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    initial_cluster: str
    token: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log(self) -> Path:
        return self.data_dir.with_suffix(".log")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (or restart, with the same data dir and ports) this member; returns at once.

        Call it from the thread that lives as long as the test (the event loop's): the member
        is killed when the thread that started it exits.
        """
        assert not self.running, f"{self.name} is already running"
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        command = [
            *DIE_WITH_PARENT,
            ETCD,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.initial_cluster}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",  # ignored on a restart: the data dir knows the cluster
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power loss of the machine would end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def status(self, timeout: float = 1.0) -> Any:
        """etcd's StatusResponse from this member (raises grpc.RpcError if it does not answer)."""
        with grpc.insecure_channel(self.endpoint) as channel:
            return rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)

    def serves(self, timeout: float = 1.0) -> bool:
        """Whether this member answers a linearizable read (it has a leader and a quorum)."""
        try:
            with grpc.insecure_channel(self.endpoint) as channel:
                request = rpc.RangeRequest(key=b"health")
                rpc.KVStub(channel).Range(request, timeout=timeout, metadata=_REQUIRE_LEADER)
        except grpc.RpcError:
            return False
        return True


@dataclass
class EtcdCluster:
    members: list[EtcdMember]

    @classmethod
    def start(cls, tmp_dir: Path, members: int = 1, timeout: float = START_TIMEOUT) -> EtcdCluster:
        require_etcd()
        tmp_dir.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(2 * members)
        names = [f"m{i}" for i in range(members)]
        initial = ",".join(f"{name}=http://127.0.0.1:{ports[2 * i + 1]}" for i, name in enumerate(names))
        token = uuid.uuid4().hex  # members of another test's cluster can never join this one
        cluster = cls(
            [
                EtcdMember(name, tmp_dir / name, ports[2 * i], ports[2 * i + 1], initial, token)
                for i, name in enumerate(names)
            ]
        )
        try:
            for member in cluster.members:
                member.start()
            cluster.wait_healthy(timeout)
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def endpoints(self) -> str:
        return ",".join(member.endpoint for member in self.members)

    @property
    def url(self) -> str:
        return f"etcd://{self.endpoints}"

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every running member serves linearizable reads (polling, with a deadline)."""
        deadline = time.monotonic() + timeout
        pending = [m for m in self.members if m.running]
        while pending:
            for member in list(pending):
                if not member.running:
                    status = member.process.returncode if member.process else None
                    log = member.log.read_text()[-3000:]
                    raise AssertionError(f"etcd {member.name} exited with status {status}:\n{log}")
                if member.serves():
                    pending.remove(member)
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"--- {m.name}\n{m.log.read_text()[-2000:]}" for m in pending)
                names = [m.name for m in pending]
                raise AssertionError(f"etcd members {names} not healthy within {timeout}s\n{logs}")
            if pending:
                time.sleep(0.05)

    def leader(self) -> EtcdMember:
        """The member that currently leads, as the running members report it."""
        for member in self.members:
            if member.running:
                status = member.status()
                for candidate in self.members:
                    if candidate.running and candidate.status().header.member_id == status.leader:
                        return candidate
        raise AssertionError("no running member reports a running leader")

    def etcdctl(self, *args: str) -> Any:
        """Run etcdctl against the running members; its JSON output, parsed."""
        endpoints = ",".join(m.endpoint for m in self.members if m.running)
        result = subprocess.run(
            [ETCDCTL, f"--endpoints={endpoints}", "-w", "json", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
            check=True,
        )
        return json.loads(result.stdout)

    def get(self, key: str) -> dict[str, Any] | None:
        """``etcdctl get KEY``: the key's record (key and value decoded), or None."""
        kvs = self.etcdctl("get", "--", key).get("kvs") or []
        if not kvs:
            return None
        record: dict[str, Any] = dict(kvs[0])
        record["key"] = base64.b64decode(record["key"]).decode()
        record["value"] = base64.b64decode(record.get("value", ""))
        return record

    def close(self) -> None:
        for member in self.members:
            member.kill()
