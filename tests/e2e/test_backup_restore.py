"""Backup and restore end to end: a real `shoal init` cluster with a namespace, a ConfigMap, a
Secret and a Deployment whose pods run; `shoal backup` by the admin (a `view` user and an
anonymous client are refused); the cluster stopped and its machine's workloads gone; `shoal
restore` into a new data dir on a new port; then the real kubectl finds the same objects (uids,
secret data), the Deployment's two pods running again and no more, and the old kubeconfigs
(the admin's and a user's, signed by the restored CA) still let in."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.backup import archive
from shoal.client import kubeconfig
from tests.conftest import SHOAL
from tests.etcd_cluster import EtcdCluster
from tests.helpers import LineReader, kube_http, kubectl, processes_with, running, wait_until

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        shutil.which("kubectl") is None, reason="kubectl is not installed (make test installs it)"
    ),
]

MARKER = f"shoal-backup-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to find and kill them
NS = "shop"


def get(config: Path, *args: str) -> Any:
    return json.loads(kubectl(config, "get", *args, "-o", "json").stdout)


def shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOAL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def start(args: list[str], procs: list[subprocess.Popen[str]]) -> tuple[str, LineReader]:
    """A manager (`shoal init` or `shoal restore`): its URL once it is ready, and its output."""
    proc = subprocess.Popen([SHOAL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(proc)
    output = LineReader(proc.stdout)
    match = re.search(r"(https://[^\s;]+)", output.wait_for(lambda s: "manager ready at" in s, timeout=30))
    assert match
    return match.group(1), output


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)
        for pid in processes_with(MARKER):  # workloads outlive their agents by design
            os.kill(pid, signal.SIGKILL)


def running_pods(config: Path) -> list[dict[str, Any]]:
    return running(get(config, "pods", "-n", NS, "-l", "app=web")["items"])


def objects(password: str) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    command = [sys.executable, "-c", "import time; time.sleep(3600)", MARKER]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": NS},
            "data": {"greeting": "hello", "colour": "teal"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": NS},
            "stringData": {"password": password},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "none", "command": command}]},
                },
            },
        },
    ]


def uids(config: Path) -> dict[str, str]:
    found = {
        "namespace": get(config, "namespace", NS),
        "configmap": get(config, "configmap", "settings", "-n", NS),
        "secret": get(config, "secret", "db", "-n", NS),
        "deployment": get(config, "deployment", "web", "-n", NS),
    }
    return {what: obj["metadata"]["uid"] for what, obj in found.items()}


@pytest.mark.parametrize("target", ["sqlite", "etcd"])
def test_backup_then_restore_into_a_new_data_dir(
    target: str,
    tmp_path: Path,
    etcd_cluster: Callable[..., EtcdCluster],
    procs: list[subprocess.Popen[str]],
) -> None:
    """A cluster on sqlite backed up, restored into sqlite again, or into etcd (the migration
    from one manager to a store several can share)."""
    store = ["--store", etcd_cluster(members=1).url] if target == "etcd" else []
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    admin = old_dir / "kubeconfig"
    url, _ = start(["init", "--data-dir", str(old_dir), "--listen", "127.0.0.1:0", "--name", "node-1"], procs)

    password = "pw-" + secrets.token_hex(16)
    kubectl(
        admin,
        "apply",
        "-f",
        "-",
        stdin="\n".join(json.dumps(o) for o in objects(password)),
    )
    wait_until(lambda: len(running_pods(admin)) == 2, timeout=30, what="2 running pods")
    before = uids(admin)
    pods_before = sorted(p["metadata"]["name"] for p in running_pods(admin))
    configmap_before = get(admin, "configmap", "settings", "-n", NS)["data"]

    # A `view` user reads pods but may not take a backup; nor may an anonymous client.
    vera = tmp_path / "vera.kubeconfig"
    made = shoal("user", "create", "vera", "--data-dir", str(old_dir), "-o", str(vera))
    assert made.returncode == 0, made.stderr
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "vera-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "vera"}],
    }
    kubectl(admin, "apply", "-f", "-", stdin=json.dumps(binding))
    wait_until(
        lambda: kubectl(vera, "get", "pods", "-n", NS, check=False).returncode == 0,
        timeout=10,
        what="vera's binding in force",
    )
    refused = shoal("backup", str(tmp_path / "by-vera.tar.gz"), "--kubeconfig", str(vera))
    assert refused.returncode == 1, refused.stdout
    assert 'User "vera" cannot get path "/shoal/v1/backup"' in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert not list(tmp_path.glob("*by-vera*"))  # neither the file nor its temporary
    with kube_http(vera) as http:
        assert http.get("/shoal/v1/backup").status_code == 403
    ca_pem = kubeconfig.read(admin).credentials.ca_pem
    assert ca_pem is not None
    anonymous = httpx.get(f"{url}/shoal/v1/backup", verify=ssl.create_default_context(cadata=ca_pem.decode()))
    assert anonymous.status_code == 403, anonymous.text
    assert 'User "system:anonymous" cannot get path "/shoal/v1/backup"' in anonymous.json()["message"]

    # The admin's backup: Secrets stay ciphertext in it.
    file = tmp_path / "cluster.tar.gz"
    taken = shoal("backup", str(file), env={"SHOAL_KUBECONFIG": str(admin)})
    assert taken.returncode == 0, taken.stderr
    assert re.search(r"at revision \d+: \d+ objects, \d+ bytes, written to .*cluster.tar.gz", taken.stdout), (
        taken.stdout
    )
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    saved = archive.load(file)
    secret_key = f"/registry/core/secrets/{NS}/db"
    assert any(kv.key == secret_key and kv.value.startswith(b"shoal:aesgcm:v1:") for kv in saved.objects)
    plain, encoded = password.encode(), base64.b64encode(password.encode())
    for kv in saved.objects:
        assert plain not in kv.value and encoded not in kv.value, kv.key
    whole = gzip.decompress(file.read_bytes())
    assert plain not in whole and encoded not in whole

    # The machine is lost: the manager stops, and the processes it ran go with it.
    stop(procs[0])
    for pid in processes_with(MARKER):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not processes_with(MARKER), timeout=10, what="the old workloads gone")

    new_url, output = start(
        [
            "restore",
            str(file),
            "--data-dir",
            str(new_dir),
            *store,
            "--listen",
            "127.0.0.1:0",
            "--name",
            "node-1",
        ],
        procs,
    )
    assert new_url != url
    assert any(f"restored {len(saved.objects)} objects" in line for line in output.seen), output.seen
    config = new_dir / "kubeconfig"
    assert uids(config) == before
    assert get(config, "configmap", "settings", "-n", NS)["data"] == configmap_before
    data = get(config, "secret", "db", "-n", NS)["data"]
    assert base64.b64decode(data["password"]).decode() == password

    # The Deployment's pods run again: the same two, not two more.
    wait_until(
        lambda: len(running_pods(config)) == 2 and len(processes_with(MARKER)) == 2,
        timeout=30,
        what="the 2 restored pods running",
    )
    pods = get(config, "pods", "-n", NS)["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == pods_before
    assert get(config, "replicasets", "-n", NS)["items"][0]["status"]["replicas"] == 2

    # The CA and the admin certificate came along: old kubeconfigs work against the new server.
    assert kubectl(admin, "--server", new_url, "get", "namespace", NS).returncode == 0
    assert kubectl(vera, "--server", new_url, "get", "pods", "-n", NS).returncode == 0

    # A second restore into the same data dir is refused, naming what is there.
    again = shoal("restore", str(file), "--data-dir", str(new_dir), "--no-start")
    assert again.returncode == 1
    already = new_dir / ("state.db" if target == "sqlite" else "pki/ca.crt")
    assert f"{already} exists: {new_dir} already holds a cluster" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
