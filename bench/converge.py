"""Convergence benchmark: a real cluster runs Deployments of N `sleep` pods; time to all Running,
time to tear down, and time to replace the pods of a killed agent.

Prints one JSON document (also when interrupted by SIGTERM: what was measured so far).

    .venv/bin/python bench/converge.py [--rounds 2] [--sizes 10,100,500] [--budget SECONDS]

The cluster is `shoal init` (manager with its local agent, node-1) and two `shoal join` agents
(node-2, node-3), each a separate OS process on loopback, in a temporary directory. The agents
run with `--max-pods 200` instead of the default 110, or 500 pods would not fit on three nodes.
The benchmark reads and writes the API over HTTPS as the admin, with the kubeconfig `shoal init`
writes (the cluster CA and the admin's client certificate).

Measurements, each round (rounds run one after the other on the same cluster: A B A B):
- converge_N: from the POST of a Deployment of N replicas (exec runtime, `sleep 3600`) to all
  N pods Running as seen by a watch on the pods' label; milestones (all N pods created, all
  bound to a node, first Running), pods/s, and the CPU seconds each process used meanwhile;
- teardown_N: from the DELETE of the Deployment to all its pods gone from the API and all its
  processes gone from /proc;
- failover: a Deployment of 30 replicas spread 10/10/10; `kill -9` of node-3's agent; time to
  the Node being NotReady (the 10 s lease grace period dominates), and from NotReady to 30 pods
  Running on node-1 and node-2. node-3 then rejoins and stops its stale pods.

Workload processes carry a marker in their environment (/proc/PID/environ), which finds them
for the process counts and for the final cleanup: they outlive their agents by design.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

MARKER_ENV = "SHOAL_BENCH_CONVERGE"
MARKER = uuid.uuid4().hex[:12]
MAX_PODS = 200
NODE_GRACE = 10.0  # the node lifecycle controller's default
PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Timeout(Exception):
    pass


# --------------------------------------------------------------------------- processes


def workload_pids() -> list[int]:
    needle = f"{MARKER_ENV}={MARKER}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def kill_workloads() -> int:
    killed = 0
    for pid in workload_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]  # user .. steal
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def wait_for_line(log: Path, proc: subprocess.Popen[bytes], pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{log.name}: no {pattern!r} within {timeout}s:\n{log.read_text()[-2000:]}")


class Cluster:
    """node-1 is the manager's local agent (in the manager process); node-2 and node-3 join."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        self.token = ""
        self.kubeconfig = root / "manager" / "kubeconfig"  # the admin's, written by init

    def _spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shoal.cli.main", *args, "--max-pods", str(MAX_PODS)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs[name] = proc
        return proc, log

    def start(self) -> None:
        proc, log = self._spawn(
            "manager",
            "init",
            "--data-dir",
            str(self.root / "manager"),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "node-1",
        )
        self.url = wait_for_line(log, proc, r"manager ready at (https://[^\s;]+)", 60).group(1)
        self.token = wait_for_line(log, proc, r"shoal join \S+ --token (\S+)", 10).group(1)
        for name in ("node-2", "node-3"):
            self.join(name)

    def join(self, name: str) -> None:
        proc, log = self._spawn(
            name, "join", self.url, "--token", self.token, "--name", name, "--data-dir", str(self.root / name)
        )
        wait_for_line(log, proc, rf"node {name} joined the cluster", 60)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each cluster process, of this benchmark, and of the whole machine
        (busy: everything, including the workloads' fork/exec and the kernel)."""
        out = {name: cpu_seconds(proc.pid) for name, proc in self.procs.items()}
        out["bench_client"] = cpu_seconds(os.getpid())
        out["machine_busy"] = machine_cpu()[0]
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- watches


class Watch:
    """A list+watch of one collection, kept as name -> object; `changed` is set on each event."""

    def __init__(self, http: httpx.AsyncClient, path: str, selector: str = "") -> None:
        self.http = http
        self.path = path
        self.params = {"labelSelector": selector} if selector else {}
        self.items: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.events = 0

    async def start(self) -> None:
        rv = await self._list()
        self.task = asyncio.create_task(self._run(rv))

    async def _list(self) -> str:
        response = await self.http.get(self.path, params=self.params)
        response.raise_for_status()
        listing = response.json()
        self.items = {item["metadata"]["name"]: item for item in listing["items"]}
        self.changed.set()
        rv: str = listing["metadata"]["resourceVersion"]
        return rv

    async def _run(self, rv: str) -> None:
        while True:
            params = {**self.params, "watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
            try:
                async with self.http.stream(
                    "GET", self.path, params=params, timeout=httpx.Timeout(30, read=None)
                ) as response:
                    if response.status_code == 410:
                        rv = await self._list()
                        continue
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        event = orjson.loads(line)
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            rv = await self._list()
                            break
                        rv = obj["metadata"].get("resourceVersion", rv)
                        if kind == "DELETED":
                            self.items.pop(obj["metadata"]["name"], None)
                        elif kind in ("ADDED", "MODIFIED"):
                            self.items[obj["metadata"]["name"]] = obj
                        self.events += 1
                        self.changed.set()
            except httpx.HTTPError:
                await asyncio.sleep(0.2)

    async def until(self, predicate: Callable[[], bool], within: float, poll: float | None = None) -> float:
        """Wait until `predicate()` holds (checked on every event, and every `poll` seconds);
        returns the perf_counter at which it was seen to hold."""
        deadline = time.perf_counter() + within
        while True:
            self.changed.clear()
            if predicate():
                return time.perf_counter()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise Timeout()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, poll) if poll else left):
                    await self.changed.wait()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def live(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


def running(pod: dict[str, Any]) -> bool:
    return live(pod) and pod.get("status", {}).get("phase") == "Running"


def ready_status(node: dict[str, Any] | None) -> str:
    for condition in (node or {}).get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return str(condition["status"])
    return "Unknown"


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    container = {
        "name": "main",
        "image": "none",
        "command": ["sleep", "3600"],
        "env": [{"name": MARKER_ENV, "value": MARKER}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


async def background_load(seconds: float = 0.5) -> float:
    """Cores busy on the machine while the cluster idles: other tenants' load skews the run."""
    busy0, total0 = machine_cpu()
    await asyncio.sleep(seconds)
    busy1, total1 = machine_cpu()
    return round((busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1), 2)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def utilisation(cpu: dict[str, float], wall: float) -> dict[str, float]:
    """Cores busy on average over `wall` seconds (1.0 = one core; the machine has cpu_count)."""
    return {name: round(seconds / wall, 2) for name, seconds in cpu.items()} if wall > 0 else {}


def per_node(pods: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName", "")
        counts[node] = counts.get(node, 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- measurements


async def converge(
    http: httpx.AsyncClient, cluster: Cluster, name: str, n: int, cap: float
) -> dict[str, Any]:
    watch = Watch(http, PODS, f"app={name}")
    await watch.start()
    out: dict[str, Any] = {"replicas": n}
    try:
        out["background_cores_busy"] = await background_load()
        cpu0 = cluster.cpu()
        start = time.perf_counter()
        response = await http.post(DEPLOYMENTS, content=orjson.dumps(deployment(name, n)))
        assert response.status_code == 201, response.text
        milestones: dict[str, float] = {}
        node_counts: dict[str, int] = {}
        node_done: dict[str, float] = {}  # when each node's last pod was seen Running

        def check() -> bool:
            pods = [p for p in watch.items.values() if live(p)]
            now = time.perf_counter()
            if len(pods) >= n:
                milestones.setdefault("all_created_s", now)
            if sum(1 for p in pods if p["spec"].get("nodeName")) >= n:
                milestones.setdefault("all_bound_s", now)
            counts = per_node([p for p in pods if running(p)])
            for node, count in counts.items():
                if count > node_counts.get(node, 0):
                    node_counts[node] = count
                    node_done[node] = now
            up = sum(counts.values())
            if up:
                milestones.setdefault("first_running_s", now)
            return up >= n

        try:
            done = await watch.until(check, cap)
            elapsed = done - start
            out["all_running_s"] = round(elapsed, 3)
            out["pods_per_s"] = round(n / elapsed, 1)
        except Timeout:
            elapsed = time.perf_counter() - start
            pods = [p for p in watch.items.values() if live(p)]
            out["capped_at_s"] = cap
            out["reached"] = {
                "created": len(pods),
                "bound": sum(1 for p in pods if p["spec"].get("nodeName")),
                "running": sum(1 for p in pods if running(p)),
                "pods_per_s": round(sum(1 for p in pods if running(p)) / elapsed, 1),
            }
        out.update({k: round(v - start, 3) for k, v in sorted(milestones.items(), key=lambda kv: kv[1])})
        out["node_last_running_s"] = {k: round(v - start, 3) for k, v in sorted(node_done.items())}
        out["cpu_s"] = cpu_delta(cpu0, cluster.cpu())
        out["wall_s"] = round(elapsed, 3)
        out["cores_busy"] = utilisation(out["cpu_s"], elapsed)
        out["per_node"] = per_node([p for p in watch.items.values() if running(p)])
        out["processes"] = len(workload_pids())
        out["pod_watch_events"] = watch.events
        return out
    finally:
        await watch.stop()


async def teardown(http: httpx.AsyncClient, cluster: Cluster, name: str, cap: float) -> dict[str, Any]:
    watch = Watch(http, PODS, f"app={name}")
    await watch.start()
    out: dict[str, Any] = {}
    try:
        cpu0 = cluster.cpu()
        start = time.perf_counter()
        response = await http.delete(f"{DEPLOYMENTS}/{name}")
        assert response.status_code < 300, response.text
        marks: dict[str, float] = {}
        procs = [len(workload_pids())]
        scanned = [time.perf_counter()]

        def check() -> bool:
            now = time.perf_counter()
            if not watch.items:
                marks.setdefault("pods_gone_s", now)
            if now - scanned[0] >= 0.1:  # a /proc scan costs ~ms: at most 10 a second
                procs[0] = len(workload_pids())
                scanned[0] = now
            if not procs[0]:
                marks.setdefault("processes_gone_s", now)
            return len(marks) == 2

        try:
            await watch.until(check, cap, poll=0.1)
        except Timeout:
            out["capped_at_s"] = cap
            out["left"] = {"pods": len(watch.items), "processes": procs[0]}
        wall = time.perf_counter() - start
        out.update({k: round(v - start, 3) for k, v in marks.items()})
        out["cpu_s"] = cpu_delta(cpu0, cluster.cpu())
        out["cores_busy"] = utilisation(out["cpu_s"], wall)
        return out
    finally:
        await watch.stop()


async def failover(http: httpx.AsyncClient, cluster: Cluster, name: str, n: int = 30) -> dict[str, Any]:
    out: dict[str, Any] = {"replicas": n, "node_grace_s": NODE_GRACE}
    out["converge"] = await converge(http, cluster, name, n, 60)
    pods = Watch(http, PODS, f"app={name}")
    nodes = Watch(http, "/api/v1/nodes")
    await pods.start()
    await nodes.start()
    try:
        before = {p["metadata"]["name"] for p in pods.items.values() if running(p)}
        out["per_node_before"] = per_node([p for p in pods.items.values() if running(p)])
        victim = cluster.procs["node-3"]
        cpu0 = cluster.cpu()
        killed = time.perf_counter()
        victim.kill()
        victim.wait()
        marks: dict[str, float] = {}

        def node_down() -> bool:
            return ready_status(nodes.items.get("node-3")) != "True"

        async def follow_node() -> None:
            marks["not_ready"] = await nodes.until(node_down, NODE_GRACE + 60)

        follower = asyncio.create_task(follow_node())

        def replaced() -> bool:
            now = time.perf_counter()
            current = [p for p in pods.items.values() if live(p)]
            if any(p["metadata"]["name"] not in before for p in current):
                marks.setdefault("first_replacement_created", now)
            up = [p for p in current if running(p) and p["spec"].get("nodeName") != "node-3"]
            return len(up) >= n

        try:
            done = await pods.until(replaced, NODE_GRACE + 90)
            out["kill_to_all_replaced_s"] = round(done - killed, 3)
        except Timeout:
            out["capped"] = True
            out["running_elsewhere"] = sum(
                1 for p in pods.items.values() if running(p) and p["spec"].get("nodeName") != "node-3"
            )
            done = time.perf_counter()
        with contextlib.suppress(Timeout):
            await follower
        if "not_ready" in marks:
            out["kill_to_not_ready_s"] = round(marks["not_ready"] - killed, 3)
            if "kill_to_all_replaced_s" in out:
                out["not_ready_to_all_replaced_s"] = round(done - marks["not_ready"], 3)
        if "first_replacement_created" in marks:
            out["kill_to_first_replacement_created_s"] = round(marks["first_replacement_created"] - killed, 3)
        out["per_node_after"] = per_node(
            [p for p in pods.items.values() if running(p) and p["spec"].get("nodeName") != "node-3"]
        )
        out["cpu_s"] = cpu_delta(cpu0, {k: v for k, v in cluster.cpu().items() if k != "node-3"})
    finally:
        await pods.stop()
        await nodes.stop()
    out["teardown"] = await teardown_with_rejoin(http, cluster, name)
    return out


async def teardown_with_rejoin(http: httpx.AsyncClient, cluster: Cluster, name: str) -> dict[str, Any]:
    """Delete the Deployment, bring node-3 back (it stops its stale pods), wait for it all to
    settle; processes left over after 60 s are killed and counted."""
    start = time.perf_counter()
    response = await http.delete(f"{DEPLOYMENTS}/{name}")
    assert response.status_code < 300, response.text
    await asyncio.to_thread(cluster.join, "node-3")
    nodes = Watch(http, "/api/v1/nodes")
    pods = Watch(http, PODS, f"app={name}")
    await nodes.start()
    await pods.start()
    out: dict[str, Any] = {}
    try:
        with contextlib.suppress(Timeout):
            await nodes.until(lambda: ready_status(nodes.items.get("node-3")) == "True", 60)
            out["node_3_ready_again_s"] = round(time.perf_counter() - start, 3)
        try:
            await pods.until(lambda: not pods.items and not workload_pids(), 60, poll=0.1)
            out["all_gone_s"] = round(time.perf_counter() - start, 3)
        except Timeout:
            out["left"] = {"pods": len(pods.items), "processes_killed": kill_workloads()}
    finally:
        await pods.stop()
        await nodes.stop()
    return out


async def ready_nodes(http: httpx.AsyncClient, want: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        items = (await http.get("/api/v1/nodes")).json()["items"]
        if sum(1 for node in items if ready_status(node) == "True") >= want:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"fewer than {want} Ready nodes after {within}s")


def http_options(kubeconfig: Path) -> dict[str, Any]:
    """httpx options for a kubeconfig: its server, and its credentials (the cluster CA and the
    admin's client certificate) as an SSL context."""
    from shoal.client.kubeconfig import read
    from shoal.security.tls import client_context_from_pem

    connection = read(kubeconfig)
    creds = connection.credentials
    headers = {"Authorization": f"Bearer {creds.token}"} if creds.token else {}
    verify = client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem)
    return {"base_url": connection.server, "verify": verify, "headers": headers}


async def bench(cluster: Cluster, args: argparse.Namespace, results: dict[str, Any]) -> None:
    started = time.monotonic()
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(**http_options(cluster.kubeconfig), timeout=30, limits=limits) as http:
        await ready_nodes(http, 3, 60)
        for r in range(1, args.rounds + 1):
            round_out: dict[str, Any] = results.setdefault(f"round_{r}", {})
            for n in args.sizes:
                if time.monotonic() - started > args.budget:
                    results.setdefault("skipped", []).append(f"round_{r}/{n}: over the time budget")
                    continue
                name = f"r{r}-n{n}"
                cap = 60.0 if n <= 10 else 180.0
                round_out[f"converge_{n}"] = await converge(http, cluster, name, n, cap)
                progress(f"round {r} converge_{n}", round_out[f"converge_{n}"])
                round_out[f"teardown_{n}"] = await teardown(http, cluster, name, 180.0)
                progress(f"round {r} teardown_{n}", round_out[f"teardown_{n}"])
                if round_out[f"teardown_{n}"].get("left"):
                    kill_workloads()
            if args.no_failover:
                continue
            if time.monotonic() - started > args.budget:
                results.setdefault("skipped", []).append(f"round_{r}/failover: over the time budget")
                continue
            round_out["failover"] = await failover(http, cluster, f"r{r}-failover")
            progress(f"round {r} failover", round_out["failover"])
            await ready_nodes(http, 3, 60)


def progress(what: str, value: Any) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}: {json.dumps(value)}", file=sys.stderr, flush=True)


def on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="10,100,500", help="comma-separated replica counts")
    parser.add_argument(
        "--budget", type=float, default=1e9, help="seconds after which no new measurement starts"
    )
    parser.add_argument("--no-failover", action="store_true", help="only the converge_N measurements")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    signal.signal(signal.SIGTERM, on_sigterm)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "cluster": {
            "nodes": "node-1 (manager's local agent, same process), node-2, node-3 (shoal join)",
            "pods_capacity_per_node": MAX_PODS,
            "workload": "sleep 3600 (exec runtime)",
            "rounds_share_one_cluster": True,
        },
    }
    with tempfile.TemporaryDirectory(prefix="shoal-converge-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cluster.start()
            asyncio.run(bench(cluster, args, results))
        except KeyboardInterrupt:
            results["interrupted"] = True
        except Exception as err:
            results["error"] = f"{type(err).__name__}: {err}"
            for name in cluster.procs:
                log = Path(tmp) / f"{name}.log"
                if log.exists():
                    results.setdefault("log_tails", {})[name] = log.read_text(errors="replace")[-1500:]
        finally:
            cluster.stop()
            left = kill_workloads()
            if left:
                results["workloads_killed_at_exit"] = left
            print(json.dumps(results, indent=2), flush=True)


if __name__ == "__main__":
    main()
