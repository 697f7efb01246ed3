"""Leader failover: how long the control plane is leaderless after its leader is killed, and how
long API writes are unavailable to a client that fails over between managers.

Prints one JSON document on stdout (progress on stderr).

    .venv/bin/python bench/ha.py [--kills 10]

A 3-member etcd cluster (tests/etcd_cluster.py, on loopback) and three managers over it, each its
own process (`shoal init --store etcd://…` and two `shoal join --manager`, all --no-agent). Each
kill, repeated --kills times:

- find the manager holding the Lease kube-system/shoal-controllers and, after a random part of
  the renew interval (seeded by --seed, so the kills fall anywhere in the leader's renewal
  cycle), SIGKILL it (no lease is released, no request finished);
- takeover: the time from the kill until BOTH component Leases (shoal-controllers and
  shoal-scheduler) are held by another manager that runs, read through a live manager every
  --poll seconds (default 0.05, the resolution);
- writes: a client creates ConfigMaps through the killed manager (one every 10 ms) and, when a
  request fails at the transport, moves on to the next manager: the time from the kill until a
  create succeeds through another manager (every manager serves the API, so this is the
  client's own retry, not an election);
- the killed manager is started again (`shoal init` on its data dir, address and name restarts
  it) and the next kill waits until it serves.

Expected takeover: a standby takes a Lease over once the record has not changed for the lease
duration (6 s) as it observed it; the dead leader renewed it up to one renew interval (2 s)
before the kill, and standbys look every retry interval (0.5 s): about 4 to 6.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.etcd_cluster import DIE_WITH_PARENT, EtcdCluster  # noqa: E402
from tests.helpers import LineReader  # noqa: E402

SHOAL = str(Path(sys.executable).with_name("shoal"))  # the console script of this venv
COMPONENT_LEASES = ("shoal-controllers", "shoal-scheduler")
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{}"
CM_PATH = "/api/v1/namespaces/default/configmaps"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Manager:
    name: str
    data_dir: Path
    listen: str
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://{self.listen}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig this manager wrote (its own URL, the cluster's CA)."""
        return self.data_dir / "kubeconfig"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Managers:
    """Manager processes over one shared store: the first by `shoal init`, the others by
    `shoal join --manager` through it. Each dies with the thread that started it (setpriv
    --pdeathsig), so an interrupted benchmark leaves none behind; ``close()`` stops them."""

    def __init__(self, root: Path, store_url: str = "") -> None:
        self.root = root
        self.store_url = store_url
        self.managers: list[Manager] = []
        self.manager_token = ""

    def start(self, count: int) -> None:
        first = self._new("manager-1")
        self._run(first, ["init", *self._store_args()])
        if count < 2:
            return
        env = {**os.environ, "SHOAL_KUBECONFIG": str(first.kubeconfig), "KUBECONFIG": str(first.kubeconfig)}
        shown = subprocess.run(
            [SHOAL, "token", "show", "manager"], env=env, capture_output=True, text=True, timeout=30
        )
        if shown.returncode != 0:
            raise RuntimeError(f"shoal token show manager: {shown.stderr}")
        self.manager_token = shown.stdout.strip()
        for index in range(2, count + 1):
            manager = self._new(f"manager-{index}")
            self._run(manager, ["join", "--manager", first.url, "--token", self.manager_token])

    def _new(self, name: str) -> Manager:
        manager = Manager(name, self.root / name, f"127.0.0.1:{free_port()}")
        self.managers.append(manager)
        return manager

    def _run(self, manager: Manager, command: list[str]) -> None:
        argv = [*DIE_WITH_PARENT, SHOAL, *command, "--data-dir", str(manager.data_dir)]
        argv += ["--listen", manager.listen, "--name", manager.name, "--no-agent"]
        manager.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # The reader keeps draining the output, so the manager never blocks on a full pipe.
        LineReader(manager.process.stdout).wait_for(lambda line: "ready at" in line, timeout=START_TIMEOUT)

    def restart(self, manager: Manager) -> None:
        """`shoal init` on an existing data dir starts that manager again (same name, address)."""
        self._run(manager, ["init", *self._store_args()])

    def _store_args(self) -> list[str]:
        return ["--store", self.store_url] if self.store_url else []  # "": sqlite in the data dir

    def kill(self, manager: Manager) -> None:
        assert manager.process is not None
        manager.process.kill()  # SIGKILL: as a crash
        manager.process.wait()

    def by_name(self, name: str) -> Manager:
        return next(m for m in self.managers if m.name == name)

    def alive(self) -> list[Manager]:
        return [m for m in self.managers if m.running]

    def http(self, manager: Manager, timeout: float = 5.0) -> httpx.Client:
        """A client of ``manager`` with the admin credentials (any manager's kubeconfig: one CA)."""
        from shoal.client.kubeconfig import read
        from shoal.security.tls import client_context_from_pem

        creds = read(self.alive()[0].kubeconfig).credentials
        verify = client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem)
        return httpx.Client(base_url=manager.url, verify=verify, timeout=timeout)

    def close(self) -> None:
        processes = [m.process for m in self.managers if m.process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def etcd_and_managers(root: Path, managers: int) -> Any:
    """A fresh 3-member etcd cluster and ``managers`` managers over it; both stopped on exit."""
    etcd = EtcdCluster.start(root / "etcd", members=3)
    group = Managers(root, etcd.url)
    try:
        group.start(managers)
        yield etcd, group
    finally:
        group.close()
        etcd.close()


def holders(http: httpx.Client) -> dict[str, str]:
    """Component Lease → the name of the manager holding it ("" when none)."""
    held = {}
    for lease in COMPONENT_LEASES:
        response = http.get(LEASE_PATH.format(lease))
        response.raise_for_status()
        identity = str((response.json().get("spec") or {}).get("holderIdentity") or "")
        held[lease] = identity.rsplit("_", 1)[0]  # "<manager name>_<run id>"
    return held


def held_by_running(group: Managers, http: httpx.Client) -> dict[str, str] | None:
    """The component Leases' holders when every one is a manager that runs, else None."""
    held = holders(http)
    live = {m.name for m in group.alive()}
    return held if all(holder in live for holder in held.values()) else None


def lease_settings(http: httpx.Client) -> dict[str, Any]:
    """As the managers run them: the duration from the Lease, the renew interval as
    shoal.manager.run derives it (a third of the duration), the retry interval as
    LeaderElector's default."""
    from shoal.client.leaderelection import LeaderElector

    response = http.get(LEASE_PATH.format(COMPONENT_LEASES[0]))
    response.raise_for_status()
    duration = float(response.json()["spec"]["leaseDurationSeconds"])
    retry = inspect.signature(LeaderElector).parameters["retry_interval"].default
    return {
        "lease_duration_s": duration,
        "renew_interval_s": round(duration / 3, 3),
        "standby_retry_interval_s": retry,
    }


class Writer(threading.Thread):
    """Creates ConfigMaps, one every ``interval``, through ``target``; on a transport error
    (connection refused or reset) moves on to the next manager. Records when each create was
    acknowledged (201) and through which manager."""

    def __init__(self, group: Managers, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.interval = interval
        self.target = group.managers[0]
        self.acks: list[tuple[float, str]] = []  # (monotonic time, manager name)
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.counter = 0

    def aim(self, manager: Manager) -> None:
        with self.lock:
            self.target = manager

    def first_ack_after(self, moment: float, not_through: str) -> float | None:
        with self.lock:
            for at, name in self.acks:
                if at > moment and name != not_through:
                    return at
        return None

    def run(self) -> None:
        client: httpx.Client | None = None
        current: Manager | None = None
        while not self.stopping.wait(self.interval):
            with self.lock:
                target = self.target
            if target is not current or client is None:
                if client is not None:
                    client.close()
                current, client = target, self.group.http(target, timeout=5)
            self.counter += 1
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"ha-{self.counter}"}}
            try:
                response = client.post(CM_PATH, json=body)
            except httpx.TransportError as err:
                kind = type(err).__name__
                with self.lock:
                    self.errors[kind] = self.errors.get(kind, 0) + 1
                    managers = self.group.managers
                    if self.target is current:  # not re-aimed meanwhile: the next manager
                        self.target = managers[(managers.index(current) + 1) % len(managers)]
                continue
            if response.status_code == 201:
                with self.lock:
                    self.acks.append((time.monotonic(), current.name))
            else:
                kind = f"HTTP {response.status_code}"
                with self.lock:
                    self.errors[kind] = self.errors.get(kind, 0) + 1
        if client is not None:
            client.close()


def wait_for(what: str, check: Any, timeout: float, interval: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def one_kill(
    group: Managers, writer: Writer, poll: float, index: int, rng: random.Random, renew_interval: float
) -> dict[str, Any]:
    with group.http(group.alive()[0], timeout=2) as http:
        before = wait_for(
            "both component Leases held by running managers",
            lambda: held_by_running(group, http),
            timeout=30,
            interval=poll,
        )
    leader = group.by_name(before["shoal-controllers"])
    observer = next(m for m in group.alive() if m is not leader)
    writer.aim(leader)  # a client talking to the leader when it dies
    # Creates through it first, then a random part of a renew interval: the kills fall at every
    # point of the leader's renewal cycle, not always at the same time after a renewal.
    delay = 0.5 + rng.uniform(0, renew_interval)
    time.sleep(delay)
    with group.http(observer, timeout=2) as http:
        group.kill(leader)
        killed = time.monotonic()
        polls = 0
        per_lease: dict[str, float] = {}  # when each Lease was first seen held by a live manager
        while True:
            polls += 1
            with contextlib.suppress(httpx.HTTPError):
                after = holders(http)
                now = time.monotonic() - killed
                live = {m.name for m in group.alive()}
                for lease, holder in after.items():
                    if holder in live:
                        per_lease.setdefault(lease, round(now, 3))
                if all(holder in live for holder in after.values()):
                    takeover = now
                    break
            if time.monotonic() - killed > 60:
                raise RuntimeError(f"no takeover within 60 s of killing {leader.name}")
            time.sleep(poll)
    write_at = wait_for(
        "a create acknowledged by another manager",
        lambda: writer.first_ack_after(killed, not_through=leader.name),
        timeout=30,
        interval=0.01,
    )
    result = {
        "kill": index,
        "killed": leader.name,
        "held_before": before,
        "held_after": after,
        "waited_before_kill_s": round(delay, 3),
        "takeover_s": round(takeover, 3),
        "each_lease_s": per_lease,
        "writes_unavailable_s": round(write_at - killed, 3),
        "polls": polls,
    }
    log(
        f"kill {index}: {leader.name} → {after}: takeover {takeover:.3f} s, "
        f"writes back after {write_at - killed:.3f} s"
    )
    started = time.monotonic()
    group.restart(leader)
    result["restart_to_ready_s"] = round(time.monotonic() - started, 3)
    return result


def describe(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="how many leader kills (default 10)")
    parser.add_argument("--poll", type=float, default=0.05, help="Lease polling interval, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seeds the random wait before each kill")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    # SIGTERM ends the run through the finally clauses: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "setup": "3 etcd members (heartbeat 50 ms, election 500 ms), 3 managers (--no-agent), loopback",
        "poll_interval_s": args.poll,
        "writer_interval_s": 0.01,
        "seed": args.seed,
    }
    kills: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="shoal-ha-") as tmp,
        etcd_and_managers(Path(tmp), 3) as (_, group),
    ):
        log(f"3 managers up: {[m.url for m in group.managers]}")
        with group.http(group.managers[0]) as http:
            results["lease_settings"] = wait_for(
                "the controllers Lease", lambda: lease_settings(http), timeout=30, interval=0.1
            )
        writer = Writer(group)
        writer.start()
        try:
            for index in range(1, args.kills + 1):
                renew = results["lease_settings"]["renew_interval_s"]
                kills.append(one_kill(group, writer, args.poll, index, rng, renew))
        finally:
            writer.stopping.set()
            writer.join()
        results["writer"] = {"creates_acknowledged": len(writer.acks), "errors": writer.errors}
    takeovers = [k["takeover_s"] for k in kills]
    unavailable = [k["writes_unavailable_s"] for k in kills]
    results["kills"] = kills
    results["takeover"] = {"values_s": takeovers, **describe(takeovers)}
    results["writes_unavailable"] = {"values_s": unavailable, **describe(unavailable)}
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
