"""The real kubectl (1.32) against a real shoal server process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import LineReader

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        shutil.which("kubectl") is None, reason="kubectl is not installed (make test installs it)"
    ),
]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: httpd
          image: busybox:1.36
          ports: [{containerPort: 8080}]
          env: [{name: MODE, value: blue}]
        - name: sidecar
          image: busybox:1.35
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080}
"""


def kubectl(
    server: Any, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(server.kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def create_namespace(server: Any, name: str) -> None:
    # Not `kubectl create namespace`: kubectl's typed generators send protobuf, which shoal
    # does not decode yet; `create -f` sends JSON.
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    kubectl(server, "create", "-f", "-", input=json.dumps(namespace))


def test_api_resources_lists_every_kind(shoal_server: Any) -> None:
    out = kubectl(shoal_server, "api-resources").stdout
    for plural in (
        "namespaces",
        "nodes",
        "pods",
        "services",
        "endpoints",
        "secrets",
        "configmaps",
        "events",
        "leases",
        "deployments",
        "replicasets",
        "daemonsets",
        "jobs",
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
    ):
        assert any(line.split()[0] == plural for line in out.splitlines()[1:]), f"{plural} missing:\n{out}"
    deploy = next(line for line in out.splitlines() if line.startswith("deployments"))
    assert "deploy" in deploy.split() and "apps/v1" in deploy.split() and "Deployment" in deploy.split()


def test_apply_twice_updates_with_strategic_merge(shoal_server: Any, tmp_path: Path) -> None:
    ns = "kubectl-apply"
    create_namespace(shoal_server, ns)
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    first = kubectl(shoal_server, "apply", "-n", ns, "-f", str(manifest)).stdout
    assert "deployment.apps/web created" in first and "service/web created" in first

    manifest.write_text(
        DEPLOYMENT.replace("image: busybox:1.36", "image: busybox:1.37").replace("replicas: 2", "replicas: 4")
    )
    second = kubectl(shoal_server, "apply", "-n", ns, "-f", str(manifest)).stdout
    assert "deployment.apps/web configured" in second
    assert "service/web unchanged" in second

    deploy = json.loads(kubectl(shoal_server, "get", "-n", ns, "deployment", "web", "-o", "json").stdout)
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    assert deploy["spec"]["replicas"] == 4
    assert containers["httpd"]["image"] == "busybox:1.37"
    assert containers["sidecar"]["image"] == "busybox:1.35"
    assert containers["httpd"]["env"] == [{"name": "MODE", "value": "blue"}]
    assert deploy["metadata"]["generation"] == 2

    # Removing a container from the manifest removes it from the object.
    manifest.write_text(
        DEPLOYMENT.split("        - name: sidecar")[0] + DEPLOYMENT.split("image: busybox:1.35")[1]
    )
    kubectl(shoal_server, "apply", "-n", ns, "-f", str(manifest))
    deploy = json.loads(kubectl(shoal_server, "get", "-n", ns, "deployment", "web", "-o", "json").stdout)
    assert [c["name"] for c in deploy["spec"]["template"]["spec"]["containers"]] == ["httpd"]


def test_get_prints_the_usual_columns(shoal_server: Any, tmp_path: Path) -> None:
    ns = "kubectl-get"
    create_namespace(shoal_server, ns)
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    kubectl(shoal_server, "apply", "-n", ns, "-f", str(tmp_path / "web.yaml"))
    out = kubectl(shoal_server, "get", "-n", ns, "deployments,services").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[0] == "deployment.apps/web"
    svc_header = next(line for line in lines[2:] if line.startswith("NAME"))
    assert svc_header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert any(line.startswith("service/web") and "80/TCP" in line for line in lines)

    listed = json.loads(kubectl(shoal_server, "get", "-n", ns, "deployments,services", "-o", "json").stdout)
    assert listed["kind"] == "List"
    assert sorted(i["kind"] for i in listed["items"]) == ["Deployment", "Service"]
    wide = kubectl(shoal_server, "get", "-n", ns, "deployment", "web", "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "app=web" in wide


def test_get_watch_prints_a_pod_created_afterwards(shoal_server: Any) -> None:
    ns = "kubectl-watch"
    create_namespace(shoal_server, ns)
    watcher = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(shoal_server.kubeconfig), "get", "pods", "-n", ns, "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reader = LineReader(watcher.stdout)
        # kubectl says so on stderr when the list is empty; the watch is open once the list is done.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "late", "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        kubectl(shoal_server, "create", "-f", "-", input=json.dumps(pod))
        line = reader.wait_for(lambda text: text.startswith("late"), timeout=20)
        assert "Pending" in line
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_scale_and_delete(shoal_server: Any, tmp_path: Path) -> None:
    ns = "kubectl-scale"
    create_namespace(shoal_server, ns)
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    kubectl(shoal_server, "apply", "-n", ns, "-f", str(tmp_path / "web.yaml"))
    out = kubectl(shoal_server, "scale", "-n", ns, "deployment/web", "--replicas=7").stdout
    assert "deployment.apps/web scaled" in out
    replicas = kubectl(
        shoal_server, "get", "-n", ns, "deploy", "web", "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "7"

    out = kubectl(shoal_server, "delete", "-n", ns, "deployment/web", "service/web").stdout
    assert 'deployment.apps "web" deleted' in out and 'service "web" deleted' in out
    gone = kubectl(shoal_server, "get", "-n", ns, "deployment", "web", check=False)
    assert gone.returncode != 0 and 'deployments.apps "web" not found' in gone.stderr


def test_refusals_name_the_field(shoal_server: Any) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}},
        },
    }
    result = kubectl(shoal_server, "create", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.template.spec.containers[0].image: Required value" in result.stderr
    assert kubectl(shoal_server, "get", "deployment", "bad", check=False).returncode != 0
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "nowhere"}}
    missing_ns = kubectl(shoal_server, "apply", "-f", "-", input=json.dumps(cm), check=False)
    assert 'namespaces "nowhere" not found' in missing_ns.stderr


RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
rules:
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
subjects:
- kind: User
  name: jane
- kind: ServiceAccount
  name: bot
  namespace: kubectl-rbac
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"""


def test_rbac_objects_apply_print_and_keep_their_role_ref(shoal_server: Any, tmp_path: Path) -> None:
    ns = "kubectl-rbac"
    create_namespace(shoal_server, ns)
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(RBAC)
    out = kubectl(shoal_server, "apply", "-n", ns, "-f", str(manifest)).stdout
    assert "role.rbac.authorization.k8s.io/pod-reader created" in out
    assert "rolebinding.rbac.authorization.k8s.io/read-pods created" in out
    table = kubectl(shoal_server, "get", "rolebindings", "-n", ns, "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert table[1].split()[:2] == ["read-pods", "Role/pod-reader"] and f"{ns}/bot" in table[1]
    roles = kubectl(shoal_server, "get", "roles", "-n", ns).stdout.splitlines()
    assert roles[0].split() == ["NAME", "CREATED", "AT"] and roles[1].startswith("pod-reader")
    manifest.write_text(RBAC.replace("kind: Role\n  name: pod-reader", "kind: ClusterRole\n  name: view"))
    refused = kubectl(shoal_server, "apply", "-n", ns, "-f", str(manifest), check=False)
    assert refused.returncode != 0 and "cannot change roleRef" in refused.stderr
