"""shoal against Docker Swarm, on the same private Docker engine: how long a replicated service
takes to start, scale, heal and go away, as seen from the engine.

Prints one JSON document (also when interrupted by SIGTERM or Ctrl-C: what was measured so far).

    sudo .venv/bin/python bench/vs_swarm.py [--rounds 2] [--replicas 50] [--scale-to 100]

Needs root, dockerd (Debian docker.io), the docker CLI and busybox-static
(scripts/install-system-deps). One dockerd runs in a network namespace of a test lab host
(tests/netns.py, tests/docker_engine.py), with its own data root and socket: nothing touches
the machine's interfaces or firewall, and no registry is used (the image is Debian's static
busybox, imported). Swarm is that engine in swarm mode (`docker swarm init --advertise-addr
<lab IP>`); shoal is `shoal init --runtime docker --docker-host unix://<the engine's socket>`,
a manager with its local agent, in the same namespace (its API over HTTPS on that namespace's
loopback; the shoal CLIs use the admin kubeconfig init writes, client certificate included).
Both stay up for the whole run and take turns, A B A B: each round runs the Swarm sequence,
then the shoal sequence.

The sequence, on a new service each round (the CLIs run in the lab host, with --detach):
- create: a service of N replicas (default 50) of the busybox image → N containers running;
- scale: N → M (default 100) → M running;
- kill: `docker kill` of K (default 10) of the M containers → M running again, none of them a
  killed one (Swarm replaces a task with a new container after its restart delay, 5 s by
  default; shoal restarts the pod's container);
- remove: the service removed → none of its containers left in the engine, running or not
  (for shoal also the pods' sandbox containers: `all_gone_s`; `app_gone_s` is the app
  containers only).

Times are from just before the CLI command starts (so they include the CLI's own start: a Go
binary for Swarm, Python for shoal; `cli_s` says when it returned) to the engine showing the
target, polled every --poll seconds (default 0.05) through the engine API. "Running" is the
engine's state of the service's app containers: for Swarm the label
com.docker.swarm.service.name, for shoal the label shoal.io/container-name (never the pods'
sandbox containers, labelled shoal.io/sandbox=true).

The workload is `sh -c 'trap "exit 0" TERM; sleep 3600 & wait'`, which exits on SIGTERM: a plain
`sleep 3600` is PID 1 of its container and ignores SIGTERM, so removal would only measure the
stop grace periods (10 s for Swarm, 30 s for shoal). --command changes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.docker_engine import BUSYBOX_IMAGE, DockerEngine, EngineError  # noqa: E402
from tests.docker_engine import check_prerequisites as engine_problem  # noqa: E402
from tests.docker_engine import remove_leftovers as remove_engine_leftovers  # noqa: E402
from tests.netns import Host, Lab  # noqa: E402
from tests.netns import check_prerequisites as lab_problem  # noqa: E402
from tests.netns import remove_leftovers as remove_lab_leftovers  # noqa: E402

SWARM_LABEL = "com.docker.swarm.service.name"
SHOAL_APP_LABEL = "shoal.io/container-name"
SHOAL_POD_NAME = "shoal.io/pod-name"
SHOAL_POD_UID = "shoal.io/pod-uid"
SHOAL_SANDBOX = "shoal.io/sandbox"
SHOAL_PORT = 6443  # inside the lab host's namespace: no other process listens there
WORKLOAD = 'trap "exit 0" TERM; sleep 3600 & wait'
STEPS = ("create", "scale", "kill", "remove")


class StepFailed(Exception):
    pass


def shoal_cmd() -> list[str]:
    return [sys.executable, "-m", "shoal.cli.main"]


# --------------------------------------------------------------------------- measuring


class Poller:
    """Polls the engine for the containers of one service: running app containers, and all of
    them (any state, sandboxes included)."""

    def __init__(self, engine: DockerEngine, system: str, service: str, interval: float) -> None:
        self.engine = engine
        self.system = system
        self.service = service
        self.interval = interval
        self.polls = 0
        self.poll_seconds = 0.0  # spent in the engine API: the measurement's resolution

    def containers(self) -> list[dict[str, Any]]:
        self.polls += 1
        t = time.perf_counter()
        try:
            if self.system == "swarm":
                return self.engine.containers(all=True, **{SWARM_LABEL: self.service})
            found = self.engine.containers(all=True, **{SHOAL_POD_UID: ""})
            prefix = f"{self.service}-"
            return [c for c in found if (c.get("Labels") or {}).get(SHOAL_POD_NAME, "").startswith(prefix)]
        finally:
            self.poll_seconds += time.perf_counter() - t

    def app(self, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.system == "swarm":
            return containers
        return [c for c in containers if SHOAL_APP_LABEL in (c.get("Labels") or {})]

    def running(self, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in self.app(containers) if c.get("State") == "running"]

    def measure(
        self,
        argv: list[str],
        host: Host,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float,
        env: dict[str, str] | None = None,
        marks: dict[str, Callable[[list[dict[str, Any]]], bool]] | None = None,
    ) -> dict[str, Any]:
        """Run ``argv`` in ``host`` and poll the engine until ``done(containers)``; the times of
        the CLI's return, of each mark, and of done, from just before the CLI started."""
        marks = dict(marks or {})
        out: dict[str, Any] = {}
        start = time.perf_counter()
        cli = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        polls0, poll_seconds0 = self.polls, self.poll_seconds
        try:
            while True:
                now = time.perf_counter() - start
                if "cli_s" not in out and cli.poll() is not None:
                    out["cli_s"] = round(now, 3)
                    output = cli.stdout.read() if cli.stdout else ""
                    if cli.returncode != 0:
                        raise StepFailed(
                            f"{shlex.join(argv)}: exit {cli.returncode}: {output.strip()[-2000:]}"
                        )
                containers = self.containers()
                now = time.perf_counter() - start
                for name, mark in list(marks.items()):
                    if mark(containers):
                        out[name] = round(now, 3)
                        del marks[name]
                if done(containers) and "cli_s" in out:
                    out["done_s"] = round(now, 3)
                    break
                if done(containers):
                    out.setdefault("engine_done_before_cli_s", round(now, 3))
                if now > timeout:
                    out["error"] = f"timeout after {timeout}s"
                    out["reached_running"] = len(self.running(containers))
                    out["reached_containers"] = len(containers)
                    break
                time.sleep(self.interval)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
            if cli.stdout:
                cli.stdout.close()
        out["polls"] = self.polls - polls0
        if out["polls"]:
            out["poll_ms_avg"] = round((self.poll_seconds - poll_seconds0) / out["polls"] * 1000, 1)
        return out


# --------------------------------------------------------------------------- the two systems


class Swarm:
    name = "swarm"

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.active = False

    def start(self) -> dict[str, Any]:
        t = time.perf_counter()
        self.engine.cli("swarm", "init", "--advertise-addr", self.engine.host.ip)
        self.active = True
        return {"swarm_init_s": round(time.perf_counter() - t, 3)}

    def docker(self, *args: str) -> list[str]:
        return ["docker", *args]

    def create(self, service: str, replicas: int, image: str, command: list[str]) -> list[str]:
        return self.docker(
            "service", "create", "--detach", "--quiet", "--name", service, "--replicas", str(replicas),
            image, *command,
        )  # fmt: skip

    def scale(self, service: str, replicas: int) -> list[str]:
        return self.docker("service", "scale", "--detach", f"{service}={replicas}")

    def remove(self, service: str) -> list[str]:
        return self.docker("service", "rm", service)

    def env(self) -> dict[str, str]:
        return self.engine.env()

    def cleanup(self, service: str) -> None:
        self.engine.cli("service", "rm", service, check=False)

    def stop(self) -> None:
        if self.active:
            self.engine.cli("swarm", "leave", "--force", check=False)
            self.active = False


class Shoal:
    name = "shoal"

    def __init__(self, engine: DockerEngine, root: Path, start_timeout: float) -> None:
        self.engine = engine
        self.root = root
        self.start_timeout = start_timeout
        # The lab host's own loopback, where the CLIs run too; HTTPS with the admin's client
        # certificate from the kubeconfig init writes (its server certificate names 127.0.0.1).
        self.url = f"https://127.0.0.1:{SHOAL_PORT}"
        self.kubeconfig = root / "data" / "kubeconfig"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "shoal-init.log"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    def cli(self, *args: str) -> list[str]:
        return [*shoal_cmd(), "--server", self.url, *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.engine.host.run(self.cli(*args), timeout=timeout, env=self.env())

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SHOAL_DATA_DIR": str(self.root / "cli"),
            "SHOAL_KUBECONFIG": str(self.kubeconfig),
        }

    def start(self) -> dict[str, Any]:
        t = time.perf_counter()
        argv = [
            *shoal_cmd(), "init", "--data-dir", str(self.root / "data"),
            "--listen", f"127.0.0.1:{SHOAL_PORT}", "--runtime", "docker",
            "--docker-host", self.engine.url, "--name", "bench-node", "--max-pods", "250",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = self.engine.host.popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env()
            )
        deadline = time.monotonic() + self.start_timeout
        while "manager ready at" not in self.log_tail(100_000):
            if self.proc.poll() is not None:
                raise StepFailed(f"shoal init exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise StepFailed(f"shoal init: not ready within {self.start_timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        ready = time.perf_counter()
        last = ""
        while True:
            done = self.run("node", "ls", timeout=30)
            last = done.stdout + done.stderr
            rows = [line.split() for line in done.stdout.splitlines()[1:]]
            if any(row[:2] == ["bench-node", "Ready"] for row in rows):
                break
            if self.proc.poll() is not None:
                raise StepFailed(f"shoal init exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"node bench-node not Ready within {self.start_timeout}s; "
                    f"node ls: {last}\n{self.log_tail()}"
                )
            time.sleep(0.2)
        now = time.perf_counter()
        return {"manager_ready_s": round(ready - t, 3), "node_ready_s": round(now - t, 3)}

    def create(self, service: str, replicas: int, image: str, command: list[str]) -> list[str]:
        return self.cli(
            "service", "create", service, "--detach", "--image", image, "--replicas", str(replicas),
            "--", *command,
        )  # fmt: skip

    def scale(self, service: str, replicas: int) -> list[str]:
        return self.cli("service", "scale", f"{service}={replicas}")

    def remove(self, service: str) -> list[str]:
        return self.cli("service", "rm", service)

    def cleanup(self, service: str) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run("service", "rm", service)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


System = Swarm | Shoal


# --------------------------------------------------------------------------- one round


def sequence(
    system: System,
    engine: DockerEngine,
    service: str,
    args: argparse.Namespace,
    command: list[str],
    out: dict[str, Any],
) -> None:
    """The four steps; results go into ``out`` as they come (kept if interrupted)."""
    poll = Poller(engine, system.name, service, args.poll)
    env = system.env()
    out["service"] = service
    n, m, k = int(args.replicas), int(args.scale_to), int(args.kill)

    def running(count: int) -> Callable[[list[dict[str, Any]]], bool]:
        return lambda cs: len(poll.running(cs)) >= count

    def first_running(cs: list[dict[str, Any]]) -> bool:
        return len(poll.running(cs)) > 0

    def step(name: str, result: dict[str, Any]) -> None:
        out[name] = result
        if "error" in result:
            raise StepFailed(f"{name}: {result['error']}")

    try:
        step(
            "create",
            poll.measure(
                system.create(service, n, engine.image, command),
                engine.host,
                running(n),
                args.timeout,
                env,
                {"first_running_s": first_running},
            ),
        )
        step("scale", poll.measure(system.scale(service, m), engine.host, running(m), args.timeout, env))

        victims: list[str] = [c["Id"] for c in poll.running(poll.containers())[:k]]
        killed = set(victims)

        def replaced(cs: list[dict[str, Any]]) -> bool:
            return sum(1 for c in poll.running(cs) if str(c["Id"]) not in killed) >= m

        def all_dead(cs: list[dict[str, Any]]) -> bool:
            return not any(c["Id"] in killed for c in poll.running(cs))

        docker = ["docker", "kill", *victims]
        step(
            "kill",
            poll.measure(docker, engine.host, replaced, args.timeout, engine.env(), {"killed_s": all_dead}),
        )
        out["kill"]["killed"] = len(victims)

        def app_gone(cs: list[dict[str, Any]]) -> bool:
            return not poll.app(cs)

        step(
            "remove",
            poll.measure(
                system.remove(service),
                engine.host,
                lambda cs: not cs,
                args.timeout,
                env,
                {"app_gone_s": app_gone},
            ),
        )
    except StepFailed as err:
        out["error"] = str(err)
        system.cleanup(service)
        leftovers = Poller(engine, system.name, service, args.poll).containers()
        for container in leftovers:
            with contextlib.suppress(EngineError):
                engine.api("DELETE", f"/containers/{container['Id']}", params={"force": "1"})
        out["leftover_containers_removed"] = len(leftovers)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per system and step of done_s, and shoal/swarm ratios per round and of medians."""
    rounds = results["rounds"]
    medians: dict[str, dict[str, float]] = {}
    for system in ("swarm", "shoal"):
        for name in STEPS:
            values = [
                r[system][name]["done_s"] for r in rounds if "done_s" in r.get(system, {}).get(name, {})
            ]
            if values:
                medians.setdefault(system, {})[name] = round(statistics.median(values), 3)
    ratios: dict[str, Any] = {}
    for name in STEPS:
        per_round = []
        for r in rounds:
            a = r.get("swarm", {}).get(name, {}).get("done_s")
            b = r.get("shoal", {}).get(name, {}).get("done_s")
            per_round.append(round(b / a, 2) if a and b else None)
        a = medians.get("swarm", {}).get(name)
        b = medians.get("shoal", {}).get(name)
        ratios[name] = {"per_round": per_round, "of_medians": round(b / a, 2) if a and b else None}
    return {"median_done_s": medians, "ratio_shoal_over_swarm": ratios}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--scale-to", type=int, default=100)
    parser.add_argument("--kill", type=int, default=10, help="containers to docker kill")
    parser.add_argument("--poll", type=float, default=0.05, help="engine polling interval (s)")
    parser.add_argument("--timeout", type=float, default=180.0, help="per step (s)")
    parser.add_argument("--systems", default="swarm,shoal", help="which, in this order each round")
    parser.add_argument("--command", default=None, help=f"the workload (default: sh -c '{WORKLOAD}')")
    parser.add_argument("--shoal-start-timeout", type=float, default=60.0)
    args = parser.parse_args()
    command = shlex.split(args.command) if args.command else ["sh", "-c", WORKLOAD]
    systems_wanted = [s.strip() for s in args.systems.split(",") if s.strip()]

    results: dict[str, Any] = {
        "benchmark": "vs_swarm",
        "config": {
            "rounds": args.rounds,
            "replicas": args.replicas,
            "scale_to": args.scale_to,
            "kill": args.kill,
            "poll_s": args.poll,
            "timeout_s": args.timeout,
            "command": command,
            "systems": systems_wanted,
            "cpus": os.cpu_count(),
        },
        "notes": [
            "done_s: from just before the CLI starts until the engine shows the target and the CLI"
            " has returned; cli_s: the CLI's return",
            "one poll = one engine API list (poll_ms_avg) + the --poll sleep: the resolution",
            "kill: Swarm replaces a killed task after its restart delay (default 5 s); shoal"
            " restarts the pod's container",
            "remove: all_gone for shoal includes the pods' sandbox containers; app_gone_s is the"
            " app containers only",
        ],
        "rounds": [],
    }

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    why = lab_problem() or engine_problem()
    if why:
        results["error"] = why
        print(json.dumps(results, indent=2))
        return 2

    lab = Lab(hosts=1)
    engine: DockerEngine | None = None
    systems: list[System] = []
    tmp = Path(tempfile.mkdtemp(prefix="shoal-vs-swarm-"))
    code = 0
    try:
        remove_lab_leftovers()
        remove_engine_leftovers()
        lab.open()
        engine = DockerEngine(lab.hosts[0])
        t = time.perf_counter()
        engine.start()
        engine.import_busybox(BUSYBOX_IMAGE)
        info = engine.api("GET", "/info")
        results["engine"] = {
            "version": info.get("ServerVersion"),
            "storage_driver": info.get("Driver"),
            "cgroup": f"{info.get('CgroupDriver')} v{info.get('CgroupVersion')}",
            "host": lab.hosts[0].name,
            "ip": lab.hosts[0].ip,
            "start_and_import_s": round(time.perf_counter() - t, 3),
        }
        setup: dict[str, Any] = {}
        for name in systems_wanted:
            system: System = (
                Swarm(engine) if name == "swarm" else Shoal(engine, tmp / "shoal", args.shoal_start_timeout)
            )
            (tmp / "shoal").mkdir(exist_ok=True)
            try:
                setup[name] = system.start()
                systems.append(system)
            except (StepFailed, EngineError, subprocess.TimeoutExpired) as err:
                setup[name] = {"error": str(err)}
                system.stop()
        results["setup"] = setup
        for i in range(1, args.rounds + 1):
            entry: dict[str, Any] = {"round": i}
            results["rounds"].append(entry)
            for system in systems:
                sequence(
                    system, engine, f"vs-{system.name}-r{i}", args, command, entry.setdefault(system.name, {})
                )
        results["summary"] = summarize(results)
    except KeyboardInterrupt:
        results["interrupted"] = True
        code = 130
    except (EngineError, OSError, subprocess.SubprocessError) as err:
        results["error"] = f"{type(err).__name__}: {err}"
        code = 1
    finally:
        for system in reversed(systems):
            with contextlib.suppress(Exception):
                system.stop()
        if engine is not None:
            engine.stop()
        lab.close()
        shoal_log = tmp / "shoal" / "shoal-init.log"
        if any("error" in r.get("shoal", {}) for r in results["rounds"]) or "error" in results.get(
            "setup", {}
        ).get("shoal", {}):
            with contextlib.suppress(OSError):
                results["shoal_log_tail"] = shoal_log.read_text(errors="replace")[-3000:]
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        if "summary" not in results and results["rounds"]:
            results["summary"] = summarize(results)
        print(json.dumps(results, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
