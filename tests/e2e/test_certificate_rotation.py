"""A node certificate is renewed before it expires, while the agent runs: with one-minute
certificates (`shoal init --cert-expiry 1m`) the local agent gets a new one after 40 s, keeps its
node Ready and its pod running, and the old certificate is no longer the one in use."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import SHOAL
from tests.helpers import LineReader, kube_http, wait_until

pytestmark = pytest.mark.slow


def serial(path: Path) -> int:
    return int(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "m"
    process = subprocess.Popen(
        [
            SHOAL,
            "init",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "n1",
            "--cert-expiry",
            "1m",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        LineReader(process.stdout).wait_for(lambda line: "manager ready at" in line, timeout=30)
        yield data_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_agent_renews_its_certificate_and_stays_connected(manager: Path) -> None:
    certificate = manager / "agent" / "pki" / "node.crt"
    http = kube_http(manager / "kubeconfig")

    def ready() -> bool:
        node = http.get("/api/v1/nodes/n1")
        conditions = node.json().get("status", {}).get("conditions", []) if node.status_code == 200 else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until(lambda: certificate.exists() and ready(), timeout=30, what="node n1 Ready")
    first = serial(certificate)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "steady"},
        "spec": {"containers": [{"name": "c", "image": "none", "command": ["sleep", "300"]}]},
    }
    assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
    wait_until(
        lambda: (
            http.get("/api/v1/namespaces/default/pods/steady").json().get("status", {}).get("phase")
            == "Running"
        ),
        timeout=30,
        what="the pod running",
    )
    # Renewal is due once a third of the minute is left: about 40 s in.
    wait_until(
        lambda: serial(certificate) != first, timeout=90, interval=0.5, what="a renewed node certificate"
    )
    # The agent goes on with the new certificate: its heartbeat keeps the node Ready, and it
    # still syncs pods (a new one runs).
    pod["metadata"]["name"] = "after"
    assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
    wait_until(
        lambda: (
            http.get("/api/v1/namespaces/default/pods/after").json().get("status", {}).get("phase")
            == "Running"
        ),
        timeout=30,
        what="a pod started after the renewal",
    )
    assert ready()
    log = (manager / "audit.log").read_text()
    assert re.search(r'"user":"n1".*"uri":"/shoal/v1/renew".*"code":200', log), "the renewal is audited"
