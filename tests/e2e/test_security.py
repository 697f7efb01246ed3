"""Authentication and authorization end to end: a real `shoal init` (node-1) and one `shoal join`
(node-2), users made with `shoal user create` and bound to the default roles by the admin,
driven with the real kubectl; the joined node's own certificate under the Node authorizer and
its revocation by `shoal node rm`; bearer tokens from `shoal token create`; anonymous requests."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import ssl
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

from shoal.client import kubeconfig
from shoal.security import usertokens
from shoal.security.tls import client_context_from_pem
from tests.conftest import SHOAL
from tests.helpers import LineReader, kube_http, kubectl, processes_with, ready, wait_until

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        shutil.which("kubectl") is None, reason="kubectl is not installed (make test installs it)"
    ),
]

MARKER = f"shoal-security-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to kill leftovers
SLEEPER = [sys.executable, "-c", "import time; time.sleep(3600)", MARKER]
NS = "team"  # where the namespaced bindings are
NODES = {"node-1", "node-2"}


@dataclass
class Cluster:
    url: str
    data_dir: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    users: dict[str, Path] = field(default_factory=dict)  # user name: its kubeconfig

    @property
    def manager_dir(self) -> Path:
        return self.data_dir / "manager"

    @property
    def kubeconfig(self) -> Path:
        return self.manager_dir / "kubeconfig"  # the admin's (system:masters), written by init

    @property
    def ca_pem(self) -> bytes:
        return (self.manager_dir / "pki" / "ca.crt").read_bytes()

    @property
    def node_pki(self) -> Path:
        return self.data_dir / "node-2" / "agent-node-2" / "pki"  # kept by `shoal join`

    def admin(self) -> httpx.Client:
        return kube_http(self.kubeconfig, timeout=10)

    def anonymous(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """Trusts the cluster CA, shows no client certificate."""
        return httpx.Client(
            base_url=self.url, verify=client_context_from_pem(self.ca_pem), headers=headers, timeout=10
        )

    def node(self) -> httpx.Client:
        """node-2's agent's own credentials: its node certificate (CN=node-2, O=shoal:nodes)."""
        context = client_context_from_pem(
            (self.node_pki / "ca.crt").read_bytes(),
            (self.node_pki / "node.crt").read_bytes(),
            (self.node_pki / "node.key").read_bytes(),
        )
        return httpx.Client(base_url=self.url, verify=context, timeout=10)

    def shoal(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A shoal command as the admin."""
        return subprocess.run(
            [SHOAL, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ready_nodes(self) -> set[str]:
        with self.admin() as http:
            items = http.get("/api/v1/nodes").raise_for_status().json()["items"]
        return ready(items)


def refused(config: Path, *args: str, stdin: str | None = None) -> str:
    """kubectl's error for a request the server refused with 403: the server's message."""
    done = kubectl(config, *args, stdin=stdin, check=False)
    assert done.returncode != 0, f"kubectl {' '.join(args)} was allowed: {done.stdout}"
    assert "Error from server (Forbidden)" in done.stderr, done.stderr
    return done.stderr


def forbidden(user: str, verb: str, resource: str, namespace: str, group: str = "") -> str:
    """kube-apiserver's wording of an RBAC refusal of a collection request."""
    qualified = f"{resource}.{group}" if group else resource
    return (
        f'{qualified} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}" in the namespace "{namespace}"'
    )


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([SHOAL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def apply(config: Path, *objects: dict[str, Any], namespace: str | None = None) -> None:
    """``kubectl apply`` of objects, a stream of JSON documents."""
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    kubectl(config, *args, stdin="\n".join(json.dumps(o) for o in objects))


def binding(kind: str, name: str, role: str, subject: str, subject_kind: str = "User") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject_kind, "name": subject}],
    }


def pod(name: str, node: str, secret: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [{"name": "main", "image": "none", "command": SLEEPER}],
    }
    if secret:
        spec["volumes"] = [{"name": "s", "secret": {"secretName": secret}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "none", "command": SLEEPER}]},
            },
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("security")
    manager = _start(
        ["init", "--data-dir", str(data_dir / "manager"), "--listen", "127.0.0.1:0", "--name", "node-1"]
    )
    found = Cluster("", data_dir, [manager])
    try:
        lines = LineReader(manager.stdout)
        url = re.search(r"(https://[^\s;]+)", lines.wait_for(lambda s: "manager ready at" in s, timeout=30))
        token = re.search(r"--token (\S+)", lines.wait_for(lambda s: "shoal join" in s, timeout=10))
        assert url and token
        found.url = url.group(1)
        agent = _start(
            ["join", found.url, "--token", token.group(1), "--name", "node-2", "--data-dir",
             str(data_dir / "node-2")]
        )  # fmt: skip
        found.procs.append(agent)
        LineReader(agent.stdout).wait_for(lambda s: "joined the cluster" in s, timeout=30)
        wait_until(lambda: found.ready_nodes() == NODES, timeout=30, what="2 Ready nodes")

        # The admin's setup: a namespace, a Secret a pod of node-2 mounts and one none does,
        # a pod on each node, and users bound to the default roles.
        admin = found.kubeconfig
        apply(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        apply(
            admin,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mounted"}, "stringData": {"k": "v"}},
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "unmounted"},
                "stringData": {"k": "v"},
            },
            pod("on-2", "node-2", secret="mounted"),
            pod("on-1", "node-1"),
            namespace=NS,
        )
        for user in ("vera", "eddie", "ada", "john"):
            path = data_dir / f"{user}.kubeconfig"
            made = found.shoal("user", "create", user, "--data-dir", str(found.manager_dir), "-o", str(path))
            assert made.returncode == 0, made.stderr
            found.users[user] = path
        apply(admin, binding("ClusterRoleBinding", "vera-view", "view", "vera"))
        apply(
            admin,
            binding("RoleBinding", "eddie-edit", "edit", "eddie"),
            binding("RoleBinding", "ada-admin", "admin", "ada"),
            namespace=NS,
        )
        yield found
    finally:
        for proc in reversed(found.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for pid in processes_with(MARKER):  # workloads outlive their agents by design
            os.kill(pid, signal.SIGKILL)


def allowed(config: Path, *args: str) -> bool:
    """Whether kubectl succeeds (the bindings reach the authorizer through a watch cache)."""
    return kubectl(config, *args, check=False).returncode == 0


def test_users_get_what_their_roles_allow_and_nothing_else(cluster: Cluster) -> None:
    vera, eddie, ada, john = (cluster.users[u] for u in ("vera", "eddie", "ada", "john"))

    # view, cluster-wide: reads everything but Secrets, writes nothing.
    wait_until(lambda: allowed(vera, "get", "pods", "-n", NS), timeout=10, what="vera's binding in force")
    names = kubectl(vera, "get", "pods", "-n", NS, "-o", "name").stdout.split()
    assert set(names) == {"pod/on-1", "pod/on-2"}
    assert kubectl(vera, "get", "pod", "on-1", "-n", NS, "-o", "json").stdout
    assert kubectl(vera, "get", "pods", "-n", "kube-system", "-o", "name").returncode == 0
    assert forbidden("vera", "list", "secrets", NS) in refused(vera, "get", "secrets", "-n", NS)
    assert 'secrets "mounted" is forbidden: User "vera" cannot get resource "secrets"' in refused(
        vera, "get", "secret", "mounted", "-n", NS
    )
    assert forbidden("vera", "create", "deployments", NS, "apps") in refused(
        vera, "create", "-n", NS, "-f", "-", stdin=json.dumps(deployment("by-vera"))
    )
    assert 'pods "on-1" is forbidden: User "vera" cannot delete resource "pods"' in refused(
        vera, "delete", "pod", "on-1", "-n", NS
    )

    # edit in NS: reads Secrets, creates and deletes workloads there; no RBAC, nothing elsewhere.
    wait_until(lambda: allowed(eddie, "get", "pods", "-n", NS), timeout=10, what="eddie's binding in force")
    secret = json.loads(kubectl(eddie, "get", "secret", "mounted", "-n", NS, "-o", "json").stdout)
    assert secret["data"] == {"k": "dg=="}
    kubectl(eddie, "create", "-n", NS, "-f", "-", stdin=json.dumps(deployment("by-eddie")))
    kubectl(eddie, "delete", "deployment", "by-eddie", "-n", NS)
    assert forbidden("eddie", "list", "pods", "default") in refused(eddie, "get", "pods", "-n", "default")
    view_john = binding("RoleBinding", "eddie-grants", "view", "john")
    assert forbidden("eddie", "create", "rolebindings", NS, "rbac.authorization.k8s.io") in refused(
        eddie, "create", "-n", NS, "-f", "-", stdin=json.dumps(view_john)
    )

    # john, bound to nothing: every resource refused, in the words of kube-apiserver.
    expected = (
        'pods is forbidden: User "john" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"'
    )
    assert expected in refused(john, "get", "pods", "-n", "kube-system")
    assert forbidden("john", "list", "pods", NS) in refused(john, "get", "pods", "-n", NS)
    assert forbidden("john", "create", "deployments", NS, "apps") in refused(
        john, "create", "-n", NS, "-f", "-", stdin=json.dumps(deployment("by-john"))
    )

    # admin in NS: grants what it holds there (john may then read NS's pods), and no more.
    wait_until(lambda: allowed(ada, "get", "secrets", "-n", NS), timeout=10, what="ada's binding in force")
    kubectl(
        ada,
        "create",
        "-n",
        NS,
        "-f",
        "-",
        stdin=json.dumps(binding("RoleBinding", "john-view", "view", "john")),
    )
    wait_until(lambda: allowed(john, "get", "pods", "-n", NS), timeout=10, what="john's view in NS")
    assert forbidden("john", "list", "pods", "kube-system") in refused(
        john, "get", "pods", "-n", "kube-system"
    )
    assert forbidden("ada", "list", "pods", "default") in refused(ada, "get", "pods", "-n", "default")
    kubectl(ada, "delete", "rolebinding", "john-view", "-n", NS)
    wait_until(lambda: not allowed(john, "get", "pods", "-n", NS), timeout=10, what="john's view revoked")

    # Escalation: binding a role one does not hold is refused, even with the right to bind.
    escalate = binding("RoleBinding", "ada-root", "cluster-admin", "ada")
    message = refused(ada, "create", "-n", NS, "-f", "-", stdin=json.dumps(escalate))
    assert 'rolebindings.rbac.authorization.k8s.io "ada-root" is forbidden: user "ada"' in message, message
    assert "is attempting to grant RBAC permissions not currently held" in message, message
    cluster_wide = binding("ClusterRoleBinding", "ada-root", "cluster-admin", "ada")
    assert 'User "ada" cannot create resource "clusterrolebindings"' in refused(
        ada, "create", "-f", "-", stdin=json.dumps(cluster_wide)
    )
    with cluster.admin() as http:
        assert (
            http.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings/ada-root").status_code
            == 404
        )
        assert http.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ada-root").status_code == 404


def test_a_node_reads_only_what_is_bound_to_it(cluster: Cluster) -> None:
    with cluster.node() as node:
        own = node.get("/api/v1/nodes/node-2")
        assert own.status_code == 200, own.text
        assert own.json()["metadata"]["name"] == "node-2"

        mine = node.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node-2"})
        assert mine.status_code == 200, mine.text
        assert "on-2" in {p["metadata"]["name"] for p in mine.json()["items"]}
        # The Node authorizer learns a pod's node from an informer: wait for it to know on-2.
        wait_until(
            lambda: node.get(f"/api/v1/namespaces/{NS}/pods/on-2").status_code == 200,
            timeout=10,
            what="node-2 may read its pod",
        )
        wait_until(
            lambda: node.get(f"/api/v1/namespaces/{NS}/secrets/mounted").status_code == 200,
            timeout=10,
            what="node-2 may read the Secret its pod mounts",
        )

        other = node.get(f"/api/v1/namespaces/{NS}/pods/on-1")  # bound to node-1
        assert other.status_code == 403, other.text
        assert 'no relationship found between node "node-2" and this object' in other.json()["message"]
        unmounted = node.get(f"/api/v1/namespaces/{NS}/secrets/unmounted")
        assert unmounted.status_code == 403, unmounted.text
        assert 'User "node-2" cannot get resource "secrets"' in unmounted.json()["message"]
        for path in ("/api/v1/pods", f"/api/v1/namespaces/{NS}/pods"):
            everything = node.get(path)
            assert everything.status_code == 403, (path, everything.text)
            assert (
                "can only list/watch pods with spec.nodeName field selector" in everything.json()["message"]
            )
        someone_else = node.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node-1"})
        assert someone_else.status_code == 403, someone_else.text
        assert node.get("/api/v1/nodes/node-1").status_code == 403
        assert node.get(f"/api/v1/namespaces/{NS}/configmaps").status_code == 403


def test_bearer_tokens_authenticate_and_made_up_ones_do_not(cluster: Cluster, tmp_path: Path) -> None:
    made = cluster.shoal("token", "create", "--user", "ci", "--group", "ci-bots", "--ttl", "1h")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token and "\n" not in token and "ci" in made.stderr
    with cluster.admin() as http:  # the cluster keeps the token's hash, the user, groups, expiry
        stored = http.get("/api/v1/namespaces/kube-system/secrets/shoal-user-tokens").json()["data"]
    record = usertokens.TokenRecord.decode(base64.b64decode(stored[usertokens.token_digest(token)]).decode())
    assert (record.user, record.groups) == ("ci", ("ci-bots",))
    assert record.expires is not None and abs(record.expires - time.time() - 3600) < 60
    assert token not in json.dumps(stored)
    apply(
        cluster.kubeconfig,
        binding("RoleBinding", "ci-view", "view", "ci"),
        binding("RoleBinding", "ci-bots-edit", "edit", "ci-bots", subject_kind="Group"),
        namespace=NS,
    )
    config = tmp_path / "ci.kubeconfig"
    kubeconfig.write(
        config, cluster.url, kubeconfig.Credentials(ca_pem=cluster.ca_pem, token=token), user="ci"
    )

    wait_until(lambda: allowed(config, "get", "pods", "-n", NS), timeout=10, what="ci's token accepted")
    with kube_http(config) as http:
        assert http.get(f"/api/v1/namespaces/{NS}/pods").status_code == 200
        # the token's group came along: ci-bots may edit in NS
        created = http.post(
            f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "from-ci"}, "data": {"a": "b"}}
        )
        assert created.status_code == 201, created.text
        elsewhere = http.get("/api/v1/namespaces/kube-system/pods")
        assert elsewhere.status_code == 403
        assert elsewhere.json()["message"] == forbidden("ci", "list", "pods", "kube-system")
    assert forbidden("ci", "list", "pods", "default") in refused(config, "get", "pods", "-n", "default")

    with cluster.anonymous({"Authorization": "Bearer shoal-made-up-token"}) as http:
        fake = http.get(f"/api/v1/namespaces/{NS}/pods")
    assert fake.status_code == 401, fake.text
    assert "bearer token refused" in fake.json()["message"]


def test_requests_without_credentials_are_anonymous(cluster: Cluster) -> None:
    with cluster.anonymous() as http:
        pods = http.get(f"/api/v1/namespaces/{NS}/pods")
        assert pods.status_code == 403, pods.text
        assert pods.json()["message"] == forbidden("system:anonymous", "list", "pods", NS)
        assert http.get("/api/v1/nodes").status_code == 403
        assert (
            http.post(f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "x"}}).status_code
            == 403
        )
        assert http.get("/healthz").status_code == 200
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the cluster CA
        httpx.get(f"{cluster.url}/healthz", timeout=10)


def test_an_agents_endpoint_admits_only_the_manager(cluster: Cluster) -> None:
    with cluster.admin() as http:
        node = http.get("/api/v1/nodes/node-2").raise_for_status().json()
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    url = f"https://{address}:{port}/stats/summary"
    ca = cluster.ca_pem

    def get(context: ssl.SSLContext) -> httpx.Response:
        # The agent's certificate names node-2, not its address: checked as the manager does.
        with httpx.Client(verify=context, timeout=10) as http:
            return http.send(http.build_request("GET", url, extensions={"sni_hostname": "node-2"}))

    # No client certificate: refused during the handshake (the endpoint requires one).
    with pytest.raises(httpx.HTTPError):
        get(client_context_from_pem(ca))
    # A node's own certificate is not a manager's.
    node_cert, node_key = (
        (cluster.node_pki / "node.crt").read_bytes(),
        (cluster.node_pki / "node.key").read_bytes(),
    )
    refused = get(client_context_from_pem(ca, node_cert, node_key))
    assert refused.status_code == 403 and "admits only managers" in refused.json()["message"]
    # The admin's certificate (system:masters) is let in.
    admin = kubeconfig.read(cluster.kubeconfig).credentials
    answer = get(client_context_from_pem(ca, admin.cert_pem, admin.key_pem))
    assert answer.status_code == 200 and answer.json()["node"]["nodeName"] == "node-2"


def test_node_rm_revokes_the_nodes_certificate(cluster: Cluster) -> None:
    """Last: node-2 is gone afterwards."""
    with cluster.node() as node:
        assert node.get("/api/v1/nodes/node-2").status_code == 200
    removed = cluster.shoal("node", "rm", "node-2", "--force")
    assert removed.returncode == 0, removed.stderr
    assert re.fullmatch(r"node-2 \(certificate [0-9a-f]+ revoked\)\n", removed.stdout), removed.stdout

    def refused_now() -> str:
        # The manager reads the revocation list through a watch cache: wait for it to catch up.
        with cluster.node() as node:
            answer = node.get("/api/v1/nodes/node-2")
        return str(answer.json()["message"]) if answer.status_code == 401 else ""

    message = wait_until(refused_now, timeout=10, what="node-2's certificate refused")
    assert "client certificate refused" in message, message
    with cluster.node() as node:
        assert node.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node-2"}).status_code == 401
    with cluster.admin() as http:  # the admin's certificate is not affected
        assert http.get("/api/v1/nodes/node-1").status_code == 200
