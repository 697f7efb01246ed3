"""Real containers end to end: three lab hosts (network namespaces), each with a private Docker
engine; `shoal init --runtime docker` on the first, `shoal join --runtime docker` on the others.
Every command runs inside a host's namespace, as a user on that machine would run it."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import SHOAL, DockerPool
from tests.docker_engine import DockerEngine, unmount_under
from tests.helpers import ready, wait_until
from tests.netns import Host

PORT = 6443
APP = "shoal.io/container-name"  # the label of app containers (sandboxes do not carry it)


@dataclass
class Node:
    name: str
    engine: DockerEngine
    process: subprocess.Popen[str]
    argv: list[str]
    log: Path  # the process's output, kept for a failed test's report

    @property
    def host(self) -> Host:
        return self.engine.host

    def app_containers(self, **labels: str) -> list[dict[str, Any]]:
        return self.engine.containers(**{APP: "", **labels})


@dataclass
class Cluster:
    url: str
    kubeconfig: Path
    nodes: list[Node] = field(default_factory=list)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.manager.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=input, timeout=60
        )

    @property
    def manager(self) -> Host:
        return self.nodes[0].host

    def shoal(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [SHOAL, "--kubeconfig", str(self.kubeconfig), "--server", self.url, *args]
        return self.manager.run(argv, input=input, timeout=60)

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self.shoal(*args, input=input)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def get(self, path: str) -> Any:
        """A GET on the API from inside the manager's host, over HTTPS with the admin's client
        certificate (kubectl get --raw with the manager's kubeconfig)."""
        done = self.kubectl("get", "--raw", path)
        assert done.returncode == 0, (path, done.stderr)
        return json.loads(done.stdout)

    def apply(self, manifest: str) -> None:
        self.ok("apply", "-f", "-", input=textwrap.dedent(manifest))

    def pods(self, selector: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/default/pods?labelSelector={quote(selector)}"
        items: list[dict[str, Any]] = self.get(path)["items"]
        return items

    def pod(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/api/v1/namespaces/default/pods/{name}")
        return found

    def ready_nodes(self) -> set[str]:
        return ready(self.get("/api/v1/nodes")["items"])

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in pod.get("status", {}).get("containerStatuses", []) if s["name"] == name)


def running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        p
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
        and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
        and not p["metadata"].get("deletionTimestamp")
    ]


def _start(host: Host, argv: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return host.popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)


def _wait_for_output(node_log: Path, pattern: str, process: subprocess.Popen[str]) -> re.Match[str]:
    def found() -> re.Match[str] | None:
        assert process.poll() is None, f"the process ended: {node_log.read_text()[-3000:]}"
        return re.search(pattern, node_log.read_text())

    match: re.Match[str] = wait_until(found, timeout=60, interval=0.1, what=f"{pattern!r} in {node_log}")
    return match


def _join(cluster: Cluster, token: str, name: str, engine: DockerEngine, data_dir: Path) -> Node:
    argv = [
        SHOAL,
        "join",
        cluster.url,
        "--token",
        token,
        "--name",
        name,
        "--data-dir",
        str(data_dir),
        "--runtime",
        "docker",
        "--docker-host",
        engine.url,
        "--stats-interval",
        "1",
    ]
    log = data_dir.parent / f"{name}.log"
    process = _start(engine.host, argv, log)
    _wait_for_output(log, f"node {name} joined the cluster", process)
    return Node(name, engine, process, argv, log)


@pytest.fixture(scope="module")
def cluster(docker_pool: DockerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("docker-cluster")
    with docker_pool.engines(3) as engines:
        first = engines[0]
        url = f"https://{first.host.ip}:{PORT}"
        argv = [
            SHOAL,
            "init",
            "--data-dir",
            str(data_dir / "node-1"),
            "--listen",
            f"{first.host.ip}:{PORT}",
            "--name",
            "node-1",
            "--runtime",
            "docker",
            "--docker-host",
            first.url,
            "--stats-interval",
            "1",
        ]
        log = data_dir / "node-1.log"
        manager = _start(first.host, argv, log)
        found = Cluster(url, data_dir / "node-1" / "kubeconfig", [Node("node-1", first, manager, argv, log)])
        try:
            token = _wait_for_output(log, r"--token (\S+)", manager)
            for i, engine in enumerate(engines[1:], start=2):
                found.nodes.append(_join(found, token.group(1), f"node-{i}", engine, data_dir / f"node-{i}"))
            wait_until(
                lambda: found.ready_nodes() == {"node-1", "node-2", "node-3"}, timeout=60, what="3 nodes"
            )
            yield found
        finally:
            for node in found.nodes:
                if node.process.poll() is not None:  # it died during the tests: say how
                    print(f"--- {node.name} ended early; its output:\n{node.log.read_text()[-5000:]}")
            for node in reversed(found.nodes):
                if node.process.poll() is None:
                    node.process.terminate()
                    try:
                        node.process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        node.process.kill()
            # The agents leave their pods running (they outlive agents): the engines go with
            # the pool, and the secret volumes' tmpfs mounts go here.
            unmount_under(data_dir)


def _delete(cluster: Cluster, *what: str) -> None:
    cluster.ok("delete", *what)


def test_a_deployment_serves_through_host_ports_and_killed_containers_come_back(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: httpd
                image: shoal-test/busybox:1
                command: [sh, -c, 'mkdir -p /w && hostname > /w/index.html && exec httpd -f -p 80 -h /w']
                ports: [{containerPort: 80, hostPort: 8080}]
                readinessProbe: {httpGet: {port: 80}, periodSeconds: 1}
        """
    )
    wait_until(lambda: len(running(cluster.pods("app=web"))) == 3, timeout=90, what="3 web pods ready")
    pods = cluster.pods("app=web")
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2", "node-3"}  # one per hostPort
    for node in cluster.nodes:
        # Served through the node's port, from another host: the pod's hostname comes back.
        done = cluster.manager.run(["busybox", "wget", "-q", "-O-", f"http://{node.host.ip}:8080/"])
        on_node = next(p for p in pods if p["spec"]["nodeName"] == node.name)
        assert done.stdout.strip() == on_node["metadata"]["name"], done.stderr

    victim = cluster.node("node-2")
    [container] = victim.app_containers(**{"shoal.io/pod-name": ""})
    victim.engine.api("POST", f"/containers/{container['Id']}/kill")
    name = next(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == "node-2")

    def came_back() -> bool:
        status = _container(cluster.pod(name), "httpd")
        return status["restartCount"] == 1 and status["ready"]

    wait_until(came_back, timeout=60, what="the killed container restarted and ready")
    last = _container(cluster.pod(name), "httpd")["lastState"]["terminated"]
    assert last["exitCode"] == 137
    done = cluster.manager.run(["busybox", "wget", "-q", "-O-", f"http://{victim.host.ip}:8080/"])
    assert done.stdout.strip() == name
    _delete(cluster, "deployment", "web")
    wait_until(
        lambda: not any(n.app_containers() for n in cluster.nodes), timeout=60, what="web containers gone"
    )


def test_a_memory_hog_is_oom_killed(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: hog}
        spec:
          restartPolicy: Never
          containers:
          - name: hog
            image: shoal-test/busybox:1
            command: [tail, /dev/zero]  # keeps the line it reads: it never ends
            resources: {limits: {memory: 32Mi}}
        """
    )

    def terminated() -> dict[str, Any] | None:
        status = cluster.pod("hog").get("status", {})
        state = next(iter(status.get("containerStatuses", [])), {}).get("state", {})
        return state.get("terminated") if status.get("phase") == "Failed" else None

    wait_until(lambda: terminated() is not None, timeout=60, what="the hog to be killed")
    assert (terminated() or {})["reason"] == "OOMKilled"
    assert (terminated() or {})["exitCode"] == 137
    _delete(cluster, "pod", "hog")


def test_a_mounted_secret_is_readable_inside_and_absent_from_docker_inspect(cluster: Cluster) -> None:
    value = secrets.token_hex(16)
    encoded = base64.b64encode(value.encode()).decode()
    cluster.apply(
        f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: db}}
        data: {{password: {encoded}}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings}}
        data: {{mode: fast, other: slow}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: reader, labels: {{app: reader}}}}
        spec:
          nodeSelector: {{kubernetes.io/hostname: node-3}}
          containers:
          - name: reader
            image: shoal-test/busybox:1
            command: [sh, -c, "$(SCRIPT)"]
            env:
            - name: SCRIPT
              value: >-
                cat /run/secrets/db/password; echo; ls -l /etc/settings /run/secrets/db;
                touch /run/secrets/db/x || echo read-only; sleep 3600
            volumeMounts:
            - {{name: db, mountPath: /run/secrets/db}}
            - {{name: settings, mountPath: /etc/settings}}
          volumes:
          - name: db
            secret: {{secretName: db, defaultMode: 0400}}
          - name: settings
            configMap: {{name: settings, items: [{{key: mode, path: speed}}]}}
        """
    )
    wait_until(lambda: len(running(cluster.pods("app=reader"))) == 1, timeout=60, what="the reader running")
    logs = ""

    def logged() -> bool:
        nonlocal logs
        logs = cluster.ok("logs", "reader")
        return "read-only" in logs

    wait_until(logged, timeout=30, what="the reader's output")
    assert value in logs
    assert re.search(r"-rw-r--r--.* speed", logs), logs  # items: only the key asked for, at its path
    assert re.search(r"-r--------.* password", logs), logs  # defaultMode
    assert "other" not in logs
    node = cluster.node("node-3")
    for container in node.engine.containers(all=True):
        inspected = node.engine.cli("inspect", container["Id"]).stdout
        assert value not in inspected and encoded not in inspected
    _delete(cluster, "pod", "reader")


def test_two_containers_of_a_pod_talk_over_localhost(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: pair, labels: {app: pair}}
        spec:
          containers:
          - name: server
            image: shoal-test/busybox:1
            command: [sh, -c, 'mkdir /w; echo from-the-server >/w/index.html; exec httpd -f -p 9000 -h /w']
          - name: client
            image: shoal-test/busybox:1
            command: [sh, -c, 'until wget -q -O- http://localhost:9000/; do sleep 0.2; done; sleep 3600']
        """
    )

    def replied() -> bool:
        done = cluster.shoal("logs", "pair", "-c", "client")
        if "is waiting to start" in done.stderr:
            return False  # the container is still being created: no log yet
        assert done.returncode == 0, (done.stdout, done.stderr)
        return "from-the-server" in done.stdout

    wait_until(replied, timeout=60, what="the reply")
    pod = cluster.pod("pair")
    node = cluster.node(pod["spec"]["nodeName"])
    uid = pod["metadata"]["uid"]
    assert len(node.app_containers(**{"shoal.io/pod-uid": uid})) == 2
    assert pod["status"]["podIP"].startswith("172.")  # the sandbox's address on the engine's bridge

    _delete(cluster, "pod", "pair")
    wait_until(
        lambda: node.engine.containers(all=True, **{"shoal.io/pod-uid": uid}) == [],
        timeout=60,
        what="the pod's containers and sandbox removed",
    )


def test_a_restarted_agent_adopts_its_containers_and_removes_those_of_gone_pods(cluster: Cluster) -> None:
    for name in ("steady", "doomed"):
        cluster.apply(
            f"""
            apiVersion: v1
            kind: Pod
            metadata: {{name: {name}, labels: {{app: {name}}}}}
            spec:
              nodeSelector: {{kubernetes.io/hostname: node-2}}
              containers:
              - name: app
                image: shoal-test/busybox:1
                command: [sleep, '3600']
            """
        )
    wait_until(
        lambda: len(running(cluster.pods("app in (steady,doomed)"))) == 2, timeout=60, what="both running"
    )
    node = cluster.node("node-2")
    steady = sorted(c["Id"] for c in node.engine.containers(all=True, **{"shoal.io/pod-name": "steady"}))
    assert len(steady) == 2  # the sandbox and the app
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=10)
    # The workload outlives its agent; a pod deleted meanwhile is gone from the API only.
    assert len(node.engine.containers(**{"shoal.io/pod-name": "doomed"})) == 2
    _delete(cluster, "pod", "doomed")
    node.log.write_text("")
    node.process = _start(node.host, node.argv, node.log)
    _wait_for_output(node.log, "node node-2 joined the cluster", node.process)
    wait_until(
        lambda: node.engine.containers(all=True, **{"shoal.io/pod-name": "doomed"}) == [],
        timeout=60,
        what="the new agent to remove the deleted pod's containers and sandbox",
    )
    # By then it has adopted the rest: the same containers, none started twice.
    assert (
        sorted(c["Id"] for c in node.engine.containers(all=True, **{"shoal.io/pod-name": "steady"})) == steady
    )
    assert len(running(cluster.pods("app=steady"))) == 1
    assert _container(cluster.pod("steady"), "app")["restartCount"] == 0
    _delete(cluster, "pod", "steady")


def test_an_image_that_cannot_be_pulled_waits_with_the_engines_reason(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: absent}
        spec:
          containers:
          - {name: never, image: 'shoal-test/absent:1', imagePullPolicy: Never}
          - {name: pull, image: 'shoal-test/absent:2'}
        """
    )

    def reasons() -> dict[str, str]:
        statuses = cluster.pod("absent").get("status", {}).get("containerStatuses", [])
        return {s["name"]: s["state"].get("waiting", {}).get("reason", "") for s in statuses}

    seen: dict[str, str] = {}

    def both_waiting() -> bool:
        seen.update(reasons())
        return seen.get("never") == "ErrImageNeverPull" and seen.get("pull") in (
            "ErrImagePull",
            "ImagePullBackOff",
        )

    try:
        wait_until(both_waiting, timeout=60, interval=0.2, what="image errors in the status")
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen {seen}: {cluster.pod('absent').get('status')}") from None
    pull = _container(cluster.pod("absent"), "pull")["state"]["waiting"]
    assert pull["message"]  # the engine's words
    _delete(cluster, "pod", "absent")


def test_exec_and_logs_reach_the_container(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: shell, labels: {app: shell}}
        spec:
          containers:
          - name: main
            image: shoal-test/busybox:1
            command: [sh, -c, 'echo started; exec sleep 3600']
            env:
            - name: MY_IP
              valueFrom: {fieldRef: {fieldPath: status.podIP}}
        """
    )
    wait_until(lambda: len(running(cluster.pods("app=shell"))) == 1, timeout=60, what="shell running")
    pod_ip = cluster.pod("shell")["status"]["podIP"]
    assert cluster.ok("exec", "shell", "--", "sh", "-c", "echo $MY_IP").strip() == pod_ip
    # The container's own view: its hostname is the pod's name (set on the sandbox).
    assert cluster.ok("exec", "shell", "--", "hostname").strip() == "shell"
    done = cluster.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr.splitlines()[0]) == (3, "out\n", "err")
    done = cluster.kubectl("exec", "-i", "shell", "--", "cat", input="typed\n")
    assert (done.returncode, done.stdout) == (0, "typed\n")
    done = cluster.kubectl("logs", "shell")
    assert (done.returncode, done.stdout) == (0, "started\n")
    _delete(cluster, "pod", "shell")


def test_kubectl_top_reports_cpu_and_memory_within_limits(cluster: Cluster) -> None:
    cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: busy, labels: {app: busy}}
        spec:
          containers:
          - name: spin
            image: shoal-test/busybox:1
            command: [sh, -c, 'while :; do :; done']
            resources: {limits: {cpu: 250m, memory: 32Mi}}
        """
    )
    wait_until(lambda: len(running(cluster.pods("app=busy"))) == 1, timeout=60, what="busy running")
    row: list[str] = []

    def measured() -> bool:
        nonlocal row
        done = cluster.kubectl("top", "pod", "busy", "--no-headers")
        row = done.stdout.split()
        return done.returncode == 0 and len(row) == 3

    wait_until(measured, timeout=30, interval=0.5, what="metrics of the busy pod")
    cpu, memory = int(row[1].removesuffix("m")), row[2]
    assert 150 <= cpu <= 300, row  # the CFS quota holds the spinning loop near its 250m limit
    assert memory.endswith("Mi") and int(memory.removesuffix("Mi")) <= 32, row
    metrics = cluster.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy")
    [usage] = [c["usage"] for c in metrics["containers"]]
    assert int(usage["memory"].removesuffix("Ki")) > 0, metrics  # a shell's few hundred KiB
    done = cluster.kubectl("top", "node", "--no-headers")
    assert done.returncode == 0 and {line.split()[0] for line in done.stdout.splitlines()} == {
        "node-1",
        "node-2",
        "node-3",
    }, done.stdout + done.stderr
    _delete(cluster, "pod", "busy")


def test_a_swarm_service_publishes_a_port_and_mounts_a_secret(cluster: Cluster) -> None:
    password = secrets.token_hex(12)
    cluster.ok("secret", "create", "db-pass", "-", input=password)
    cluster.ok(
        "service",
        "create",
        "api",
        "--image",
        "shoal-test/busybox:1",
        "--publish",
        "8081:80",
        "--secret",
        "db-pass",
        "--limit-memory",
        "64M",
        # Passes only inside the container: the host has no /run/secrets/db-pass.
        "--health-cmd",
        "test -s /run/secrets/db-pass",
        "--health-interval",
        "1s",
        "--",
        "sh",
        "-c",
        "mkdir /w; echo api >/w/index.html; exec httpd -f -p 80 -h /w",
    )
    wait_until(lambda: len(running(cluster.pods("shoal.io/service=api"))) == 1, timeout=60, what="api ready")
    [pod] = cluster.pods("shoal.io/service=api")
    node = cluster.node(pod["spec"]["nodeName"])
    done = cluster.manager.run(["busybox", "wget", "-q", "-O-", f"http://{node.host.ip}:8081/"])
    assert done.stdout == "api\n", done.stderr
    inside = cluster.ok("exec", pod["metadata"]["name"], "--", "cat", "/run/secrets/db-pass")
    assert inside == password
    for container in node.engine.containers(all=True):
        assert password not in node.engine.cli("inspect", container["Id"]).stdout
    refused = cluster.shoal("secret", "rm", "db-pass")
    assert refused.returncode == 1 and "in use by service api" in refused.stderr
    cluster.ok("service", "rm", "api")
    wait_until(lambda: not cluster.pods("shoal.io/service=api"), timeout=60, what="the api pods gone")
    cluster.ok("secret", "rm", "db-pass")
