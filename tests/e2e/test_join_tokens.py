"""Join tokens and the join exchange through the real server process and the real ``shoal
token`` and ``shoal join`` commands."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shoal.security import join as node_join
from shoal.security import pki
from shoal.security.tls import client_context_from_pem
from shoal.security.tokens import parse
from tests.conftest import SHOAL
from tests.helpers import kube_http

TOKEN = re.compile(r"^SHOAL-1-[0-9a-f]{64}-[0-9a-f]{32}$")


def shoal(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOAL, *args], env=server.env(), capture_output=True, text=True, timeout=30)


def anonymous(server: Any) -> httpx.Client:
    """A client that trusts the cluster CA and shows no credentials, as a joining machine."""
    ca_pem = (server.data_dir / "pki" / "ca.crt").read_bytes()
    return httpx.Client(base_url=server.url, verify=client_context_from_pem(ca_pem), timeout=10)


def join(server: Any, secret: str, node: str = "node-1", csr: str | None = None) -> httpx.Response:
    if csr is None:
        csr = pki.make_csr(pki.new_key(), node).decode()
    body = {"secret": secret, "nodeName": node, "csr": csr}
    with anonymous(server) as http:
        return http.post("/shoal/v1/join", json=body)


def show(server: Any, role: str = "worker") -> str:
    shown = shoal(server, "token", "show", role)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def test_tokens_pin_the_cluster_ca_and_the_current_secret_joins(shoal_server: Any) -> None:
    shown = shoal(shoal_server, "token", "show")
    assert shown.returncode == 0, shown.stderr
    token = shown.stdout.strip()
    assert TOKEN.match(token), token
    assert f"shoal join {shoal_server.url} --token {token}" in shown.stderr
    assert show(shoal_server) == token  # stable until rotated
    manager_token = show(shoal_server, "manager")
    assert TOKEN.match(manager_token) and manager_token != token

    ca_pem = (shoal_server.data_dir / "pki" / "ca.crt").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    digest = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert parse(token).digest == digest == parse(manager_token).digest

    accepted = join(shoal_server, parse(token).secret)
    assert accepted.status_code == 200, accepted.text
    answer = accepted.json()
    assert answer["nodeName"] == "node-1" and answer["role"] == "worker"
    assert answer["caCertificate"].encode() == ca_pem
    identity = pki.verify_client_certificate(ca, answer["certificate"])
    assert identity.name == "node-1" and identity.groups == ("shoal:nodes",)
    assert join(shoal_server, parse(manager_token).secret, "node-m").json()["role"] == "manager"

    # the manager records the serial it signed, for `shoal node rm`
    with kube_http(shoal_server.kubeconfig) as admin:
        record = admin.get("/api/v1/namespaces/kube-system/configmaps/shoal-node-certificates").json()
    assert record["data"]["node-1"] == pki.serial_hex(identity.serial)

    wrong = join(shoal_server, "0" * 32)
    assert wrong.status_code == 401
    assert "secret is not that of this cluster's current worker or manager token" in wrong.json()["message"]
    bad_name = join(shoal_server, parse(token).secret, node="Bad_Name")
    assert bad_name.status_code == 422 and "nodeName" in bad_name.json()["message"]
    with anonymous(shoal_server) as http:
        no_csr = http.post("/shoal/v1/join", json={"secret": "x", "nodeName": "a"})
    assert no_csr.status_code == 422 and "csr" in no_csr.json()["message"]

    rotated = shoal(shoal_server, "token", "rotate", "worker")
    assert rotated.returncode == 0, rotated.stderr
    fresh = rotated.stdout.strip()
    assert fresh != token and parse(fresh).digest == digest
    assert join(shoal_server, parse(token).secret).status_code == 401
    assert join(shoal_server, parse(fresh).secret).status_code == 200
    assert show(shoal_server, "manager") == manager_token  # rotating one role leaves the other


def test_csr_for_another_node_or_masters_is_refused(shoal_server: Any) -> None:
    secret = parse(show(shoal_server)).secret
    key = pki.new_key()
    other = join(shoal_server, secret, "node-a", pki.make_csr(key, "node-b").decode())
    assert other.status_code == 403
    assert "CSR subject CN: 'node-b' is not this node's name 'node-a'" in other.json()["message"]
    masters = join(shoal_server, secret, "node-a", pki.make_csr(key, "node-a", ("system:masters",)).decode())
    assert masters.status_code == 403 and "'system:masters' refused" in masters.json()["message"]
    garbage = join(shoal_server, secret, "node-a", "-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    assert garbage.status_code == 400 and "CSR: not a PEM" in garbage.json()["message"]
    huge = join(shoal_server, secret, "node-a", "A" * 20000)
    assert huge.status_code in (400, 413) and "too large" in huge.json()["message"]


def test_pki_files_on_the_manager(shoal_server: Any) -> None:
    pki_dir: Path = shoal_server.data_dir / "pki"
    for name in ("ca.key", "admin.key", "server.key"):
        assert stat.S_IMODE(os.stat(pki_dir / name).st_mode) == 0o600, name
    ca = pki.load_certificate((pki_dir / "ca.crt").read_bytes())
    admin = pki.verify_client_certificate(ca, (pki_dir / "admin.crt").read_bytes())
    assert admin.name == "admin" and admin.groups == ("system:masters",)
    server = pki.load_certificate((pki_dir / "server.crt").read_bytes())
    assert {"127.0.0.1", "localhost"} <= pki.san_hosts(server)


def test_the_joining_side_refuses_a_wrong_digest_and_the_manager_a_wrong_secret(
    shoal_server: Any, tmp_path: Path
) -> None:
    token = parse(show(shoal_server))
    wrong_digest = f"SHOAL-1-{'ab' * 32}-{token.secret}"
    refused = shoal(shoal_server, "join", shoal_server.url, "--token", wrong_digest, "--name", "node-x",
                    "--data-dir", str(tmp_path))  # fmt: skip
    assert refused.returncode != 0
    assert (
        f"the manager at {shoal_server.url} is not the cluster this token belongs to: CA digest mismatch"
        in refused.stderr
    ), refused.stderr
    assert not (tmp_path / "agent-node-x" / "pki" / "node.crt").exists()  # nothing kept
    # the CA was checked before the secret was shown: the manager saw no JoinRequest
    assert "node-x" not in shoal_server.log.read_text()
    with anonymous(shoal_server) as http:
        ca = http.post("/shoal/v1/join", json={"kind": "CARequest"}).json()
    assert (
        ca["kind"] == "CAResponse"
        and pki.ca_digest(pki.load_certificate(ca["caCertificate"])) == token.digest
    )

    wrong_secret = f"SHOAL-1-{token.digest}-{'0' * 32}"
    refused = shoal(shoal_server, "join", shoal_server.url, "--token", wrong_secret, "--name", "node-x",
                    "--data-dir", str(tmp_path))  # fmt: skip
    assert refused.returncode != 0 and "the join token was refused" in refused.stderr, refused.stderr
    assert "join refused (node 'node-x')" in shoal_server.log.read_text()  # refusals are logged

    malformed = shoal(shoal_server, "join", shoal_server.url, "--token", "SHOAL-1-short", "--data-dir",
                      str(tmp_path))  # fmt: skip
    assert malformed.returncode != 0 and "the join token is malformed" in malformed.stderr

    # the joining side's own exchange: key made locally, certificate and CA kept under its state dir
    joined = asyncio.run(node_join.join_cluster(shoal_server.url, str(token), "node-y", tmp_path / "y"))
    credentials = joined.credentials
    assert credentials.exists() and stat.S_IMODE(os.stat(credentials.key_path).st_mode) == 0o600
    assert credentials.ca_path.read_bytes() == (shoal_server.data_dir / "pki" / "ca.crt").read_bytes()
    assert credentials.certificate().certificate.subject.rfc4514_string() == "CN=node-y,O=shoal:nodes"
    assert not credentials.needs_renewal()


def test_node_rm_revokes_the_nodes_certificate(shoal_server: Any) -> None:
    secret = parse(show(shoal_server)).secret
    answer = join(shoal_server, secret, "node-rm")
    assert answer.status_code == 200, answer.text
    serial = pki.load_certificate(answer.json()["certificate"]).serial_number
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-rm"}}
    admin = kube_http(shoal_server.kubeconfig)
    assert admin.post("/api/v1/nodes", json=node).status_code == 201

    removed = shoal(shoal_server, "node", "rm", "node-rm")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"node-rm (certificate {serial:x} revoked)"
    assert admin.get("/api/v1/nodes/node-rm").status_code == 404
    revoked = admin.get("/api/v1/namespaces/kube-system/configmaps/shoal-revoked-certificates").json()
    admin.close()
    assert pki.serial_hex(serial) in revoked["data"]
    assert "node node-rm removed" in revoked["data"][pki.serial_hex(serial)]
    missing = shoal(shoal_server, "node", "rm", "no-such-node")
    assert missing.returncode != 0 and "no-such-node" in missing.stderr


def test_a_manager_join_needs_the_manager_token_and_a_shared_store(shoal_server: Any, tmp_path: Path) -> None:
    def join_as_manager(token: str) -> subprocess.CompletedProcess[str]:
        argv = ["join", "--manager", shoal_server.url, "--token", token, "--name", "second-manager"]
        argv += ["--data-dir", str(tmp_path / "second"), "--listen", "127.0.0.1:0", "--no-agent"]
        return shoal(shoal_server, *argv)

    refused = join_as_manager(show(shoal_server, "worker"))
    assert refused.returncode != 0
    assert "a manager joins with the manager token" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    # This server keeps its state in its own sqlite file: a second manager could not share it.
    refused = join_as_manager(show(shoal_server, "manager"))
    assert refused.returncode != 0
    assert "more managers need a shared store" in refused.stderr, refused.stderr
    assert "shoal init --store etcd://" in refused.stderr
    assert not (tmp_path / "second" / "pki" / "ca.key").exists()  # nothing of the cluster was handed over
