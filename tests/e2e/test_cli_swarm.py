"""Docker Swarm's commands (`shoal service ...`, `shoal node ...`, `shoal ps`) run as users run
them, against a real two-node cluster: `shoal init` (node-1) and one `shoal join` (node-2)."""

from __future__ import annotations

import base64
import json
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
from tests.helpers import LineReader, kube_http, ready, running, wait_until

MARKER = f"shoal-swarm-{uuid.uuid4().hex[:12]}"  # in every workload's argv, to kill leftovers
SLEEPER = shlex.join([sys.executable, "-c", "import time; time.sleep(3600)", MARKER])
NODES = {"node-1", "node-2"}


@dataclass
class Cluster:
    url: str
    data_dir: Path
    procs: list[subprocess.Popen[str]]

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "m" / "kubeconfig"  # the admin's, written by `shoal init`

    def http(self) -> httpx.Client:
        return kube_http(self.kubeconfig, timeout=10)

    def get(self, path: str) -> Any:
        with self.http() as http:
            response = http.get(path)
        response.raise_for_status()
        return response.json()

    def command(self, *args: str) -> list[str]:
        """A shoal command line as the admin, at the manager's URL (--server keeps the
        kubeconfig's credentials)."""
        return [SHOAL, "--kubeconfig", str(self.kubeconfig), "--server", self.url, *args]

    def shoal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=60, check=False)

    def ok(self, *args: str) -> str:
        done = self.shoal(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def pods(self, service: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/default/pods?labelSelector=shoal.io/service={service}"
        items: list[dict[str, Any]] = self.get(path)["items"]
        return items

    def running(self, service: str) -> list[dict[str, Any]]:
        return running(self.pods(service))

    def ready_nodes(self) -> set[str]:
        return ready(self.get("/api/v1/nodes")["items"])


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
        url = re.search(r"(https://[^\s;]+)", lines.wait_for(lambda s: "manager ready at" in s, timeout=30))
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
        ["service", "create", "bad", "--command", "sleep 1", "--mount", "type=bind,target=/x"],
        ["service", "create", "bad", "--command", "sleep 1", "--restart-max-attempts", "2"],
        ["service", "scale", "web=lots"],
        ["service", "ps", "nosuch"],
        ["node", "update", "node-2", "--availability", "sideways"],
    ]
    for args in cases:
        done = cluster.shoal(*args)
        assert done.returncode in (1, 2), (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
    publish = cluster.shoal("service", "create", "bad", "--command", "sleep 1", "--publish", "80:x")
    assert publish.returncode == 2
    assert publish.stderr.startswith('error: --publish "80:x": container port must be a number 1-65535')
    missing = cluster.shoal("service", "create", "bad", "--command", "sleep 1", "--secret", "nosuch")
    assert missing.returncode == 1 and missing.stderr == "error: secret not found: nosuch\n"
    assert cluster.get("/apis/apps/v1/namespaces/default/deployments")["items"] == []
    assert cluster.get("/apis/apps/v1/namespaces/default/daemonsets")["items"] == []
    assert cluster.get("/apis/batch/v1/namespaces/default/jobs")["items"] == []


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
    out = cluster.ok("service", "update", "web", "--env-add", "COLOUR=blue", "--no-detach")
    assert "verify: service web converged" in out, out
    assert [p["spec"]["containers"][0]["env"] for p in cluster.running("web")] == [
        [{"name": "COLOUR", "value": "blue"}]
    ] * 2

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
    assert container["resources"]["limits"] == {"cpu": "500m"}  # docker's 0.5 CPU
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


def _shoal_bytes(cluster: Cluster, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cluster.command(*args), input=stdin, capture_output=True, timeout=60, check=False)


def test_secrets_and_configs(cluster: Cluster, tmp_path: Path) -> None:
    password = tmp_path / "password.txt"
    password.write_text("hunter2\n")
    assert cluster.ok("secret", "create", "db-pass", str(password), "--label", "team=a") == "db-pass\n"
    key = bytes(range(256))
    done = _shoal_bytes(cluster, "secret", "create", "tls-key", "-", stdin=key)
    assert done.returncode == 0 and done.stdout == b"tls-key\n", done.stderr
    config = tmp_path / "app.conf"
    config.write_text("listen 80;\n")
    cluster.ok("config", "create", "app.conf", str(config))
    # A Secret not made by `shoal secret create` is not listed.
    with cluster.http() as http:
        other_secret = {"metadata": {"name": "other"}, "stringData": {"x": "y"}}
        http.post("/api/v1/namespaces/default/secrets", json=other_secret).raise_for_status()

    stored = cluster.get("/api/v1/namespaces/default/secrets/tls-key")
    assert stored["type"] == "Opaque" and stored["metadata"]["labels"] == {"shoal.io/swarm-object": "secret"}
    assert base64.b64decode(stored["data"]["tls-key"]) == key  # binary-safe
    stored_config = cluster.get("/api/v1/namespaces/default/configmaps/app.conf")
    assert stored_config["data"] == {"app.conf": "listen 80;\n"}

    again = cluster.shoal("secret", "create", "db-pass", str(password))
    assert again.returncode == 1 and again.stderr == 'error: secret "db-pass" already exists\n'
    assert [r[0] for r in rows(cluster.ok("secret", "ls"))] == ["db-pass", "tls-key"]
    assert [r[0] for r in rows(cluster.ok("config", "ls"))] == ["app.conf"]

    inspected = json.loads(cluster.ok("secret", "inspect", "db-pass"))
    assert inspected[0]["Spec"] == {"Name": "db-pass", "Labels": {"team": "a"}}
    assert "hunter2" not in json.dumps(inspected) and "aHVudGVyMg" not in json.dumps(inspected)
    assert (
        json.loads(cluster.ok("config", "inspect", "app.conf"))[0]["Spec"]["Data"]
        == base64.b64encode(b"listen 80;\n").decode()
    )
    missing = cluster.shoal("secret", "inspect", "nope")
    assert missing.returncode == 1 and missing.stderr == "error: no such secret: nope\n"

    cluster.ok(
        "service", "create", "vault", "--command", SLEEPER, "-d", "--secret", "db-pass",
        "--secret", "source=tls-key,target=/etc/ssl/key.pem,mode=0400", "--config", "app.conf",
    )  # fmt: skip
    cluster.ok("service", "create", "reader", "--command", SLEEPER, "-d", "--secret", "db-pass")
    template = cluster.get("/apis/apps/v1/namespaces/default/deployments/vault")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in template["containers"][0]["volumeMounts"]}
    assert set(mounts) == {"/run/secrets/db-pass", "/etc/ssl/key.pem", "/app.conf"}
    assert all(m["readOnly"] for m in mounts.values())
    secrets = {v["secret"]["secretName"]: v["secret"]["items"] for v in template["volumes"] if "secret" in v}
    assert secrets["tls-key"] == [{"key": "tls-key", "path": "key.pem", "mode": 0o400}]
    listed = {r[0]: r[2] for r in rows(cluster.ok("secret", "ls"))}
    assert listed == {"db-pass": "service reader, vault", "tls-key": "service vault"}

    # In use: refused, with the users named, and nothing removed (not even the unused one).
    other = tmp_path / "spare"
    other.write_text("x")
    cluster.ok("secret", "create", "spare", str(other))
    refused = cluster.shoal("secret", "rm", "spare", "db-pass")
    assert refused.returncode == 1
    assert refused.stderr == 'error: secret "db-pass" is in use by service reader, vault\n'
    assert [r[0] for r in rows(cluster.ok("secret", "ls"))] == ["db-pass", "spare", "tls-key"]
    refused = cluster.shoal("config", "rm", "app.conf")
    assert refused.returncode == 1
    assert refused.stderr == 'error: config "app.conf" is in use by service vault\n'
    assert cluster.ok("service", "update", "vault", "--config-rm", "app.conf", "-d") == "vault\n"
    assert cluster.ok("config", "rm", "app.conf") == "app.conf\n"

    cluster.ok("service", "rm", "vault", "reader")
    wait_until(lambda: not cluster.pods("vault") and not cluster.pods("reader"), timeout=15, what="pods gone")
    assert cluster.ok("secret", "rm", "db-pass", "tls-key", "spare") == "db-pass\ntls-key\nspare\n"
    assert rows(cluster.ok("secret", "ls")) == [] and rows(cluster.ok("config", "ls")) == []
    gone = cluster.shoal("secret", "rm", "db-pass")
    assert gone.returncode == 1 and gone.stderr == "error: no such secret: db-pass\n"
    with cluster.http() as http:
        http.delete("/api/v1/namespaces/default/secrets/other").raise_for_status()


def test_service_options_are_written_to_the_deployment(cluster: Cluster) -> None:
    cluster.ok(
        "service", "create", "opts", "--command", SLEEPER, "-d",
        "--publish", "18080:80", "--publish", "published=15353,target=53,protocol=udp",
        "--mount", "type=tmpfs,target=/scratch,tmpfs-size=16m", "--mount", "type=volume,target=/cache",
        "--limit-cpu", "0.5", "--limit-memory", "64M", "--reserve-memory", "32MiB",
        "--health-cmd", "true", "--health-interval", "1m30s", "--health-timeout", "500ms",
        "--health-retries", "5", "--health-start-period", "2s",
    )  # fmt: skip
    deployment = cluster.get("/apis/apps/v1/namespaces/default/deployments/opts")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert [(p["containerPort"], p.get("hostPort"), p["protocol"]) for p in container["ports"]] == [
        (80, 18080, "TCP"),
        (53, 15353, "UDP"),
    ]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    assert container["resources"]["requests"]["memory"] == "32Mi"
    probe = container["livenessProbe"]
    assert probe["exec"]["command"] == ["sh", "-c", "true"] and container["readinessProbe"] == probe
    assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"]) == (90, 1, 5)
    assert probe["initialDelaySeconds"] == 2
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["mount-0"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert volumes["mount-1"]["emptyDir"] == {}
    cluster.ok("service", "rm", "opts")
    wait_until(lambda: not cluster.pods("opts"), timeout=15, what="opts' pods gone")


def test_restart_condition_none_runs_to_completion_as_a_job(cluster: Cluster) -> None:
    once = shlex.join([sys.executable, "-c", "print('done')", MARKER])
    out = cluster.ok(
        "service", "create", "once", "--replicas", "2", "--restart-condition", "none", "--command", once,
        "--no-detach",
    )  # fmt: skip
    assert "once: 2/2 completed" in out and "verify: job once complete" in out, out
    job = cluster.get("/apis/batch/v1/namespaces/default/jobs/once")
    assert job["metadata"]["labels"]["shoal.io/service"] == "once"
    assert (job["spec"]["parallelism"], job["spec"]["completions"], job["spec"]["backoffLimit"]) == (2, 2, 0)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    assert rows(cluster.ok("service", "ls"))[0][:3] == ["once", "replicated job", "0/0 (2/2 completed)"]
    tasks = rows(cluster.ok("service", "ps", "once"))
    assert len(tasks) == 2 and all(t[2] == "Shutdown" and t[3].startswith("Succeeded") for t in tasks), tasks
    assert [t[0] for t in rows(cluster.ok("ps"))].count("once") == 2
    assert '"kind": "Job"' in cluster.ok("service", "inspect", "once")
    scaled = cluster.shoal("service", "scale", "once=3")
    assert scaled.returncode == 1 and scaled.stderr.startswith("error: once: a job (--restart-condition")

    cluster.ok("service", "rm", "once")
    wait_until(lambda: not cluster.pods("once"), timeout=15, what="the job's pods gone")
    assert cluster.get("/apis/batch/v1/namespaces/default/jobs")["items"] == []


def test_a_failing_job_is_reported(cluster: Cluster) -> None:
    done = cluster.shoal(
        "service", "create", "flop", "--restart-condition", "on-failure", "--restart-max-attempts", "0",
        "--command", "false", "--no-detach", "--timeout", "30",
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: job flop failed: "), done.stderr
    assert done.stderr.rstrip().endswith("see 'shoal service ps flop'"), done.stderr
    assert rows(cluster.ok("service", "ls"))[0][:3] == ["flop", "replicated job", "0/0 (0/1 completed)"]
    cluster.ok("service", "rm", "flop")
    wait_until(lambda: not cluster.pods("flop"), timeout=15, what="the job's pods gone")
