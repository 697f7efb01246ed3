"""An etcd member beside the manager, for a quick highly available start (``--ha``).

``shoal init --ha`` starts a one-member etcd cluster (Debian's ``etcd``) next to the manager
and keeps the cluster's state in it; each ``shoal join --manager`` to such a cluster adds a
member (etcd's MemberAdd, then the new member starts with the existing ones as its initial
cluster). Three managers then tolerate the loss of one, five of two: etcd needs a majority
of its members to accept a write.

The member lives and dies with its manager: it is the manager's child process, told by the
kernel to stop when its parent dies (``PR_SET_PDEATHSIG``, set by util-linux's setpriv), so a
``kill -9`` of the manager takes its member down too, as with k3s' embedded etcd. What the
member is (name, addresses, the store URL listing every member at join time) is kept in
``etcd-member.json`` in the data dir, so that starting the manager again restarts the same
member on its data.

Traffic between members and from the managers is plain HTTP/gRPC: run it on a private network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from shoal.security import bundle, pki
from shoal.server.run import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = bundle.MEMBER_CONFIG_FILE  # its presence tells a joining manager to add a member
DATA_DIR = "etcd"
LOG_FILE = "etcd.log"
START_TIMEOUT = 60.0


class MemberError(ConfigError):
    """The member cannot be started or added; the message says why (a setting that cannot
    work, reported as one line like the server's own)."""


@dataclass(frozen=True)
class MemberConfig:
    name: str
    host: str
    client_port: int = 2379
    peer_port: int = 2380
    store_url: str = ""  # every member's client address, as the manager's --store

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @classmethod
    def new(cls, name: str, host: str, client_port: int, peer_port: int) -> MemberConfig:
        """A member not started yet: until it knows the others, it reaches the store through itself."""
        return cls(name, host, client_port, peer_port, store_url=f"etcd://{host}:{client_port}")

    def save(self, data_dir: Path) -> None:
        pki.write_atomic(data_dir / CONFIG_FILE, json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, data_dir: Path) -> MemberConfig | None:
        path = data_dir / CONFIG_FILE
        if not path.exists():
            return None
        try:
            fields = json.loads(path.read_text())
            return cls(**fields)
        except (ValueError, TypeError) as err:
            raise MemberError(
                f"{path}: not a member description ({err}); remove it to start afresh"
            ) from None


def etcd_binary() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise MemberError("--ha needs etcd on this machine (Debian: apt-get install etcd-server)")
    return found


def _die_with_parent() -> list[str]:
    """The command prefix that has the kernel stop the member when its manager dies: util-linux's
    setpriv sets PR_SET_PDEATHSIG in the child. (Not a preexec_fn: Python code between fork and
    exec in a process that runs gRPC's threads may deadlock.)"""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise MemberError("--ha needs setpriv (Debian package util-linux) to tie etcd to its manager")
    return [setpriv, "--pdeathsig", "TERM"]


async def add_to_cluster(config: MemberConfig, store_url: str, *, request_seconds: int = 10) -> str:
    """Register ``config`` with the etcd cluster behind ``store_url`` (MemberAdd; once: a member
    already registered with this peer address is taken as this one, from an earlier attempt).
    Returns the initial-cluster string the new member starts with."""
    import aetcd  # the client loads only for managers that run a member

    host, _, port = store_url.removeprefix("etcd://").split(",")[0].rpartition(":")
    client = aetcd.Client(host=host, port=int(port), timeout=request_seconds)
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    try:
        while True:
            try:
                members = [m async for m in client.members()]
                if not any(config.peer_url in m.peer_urls for m in members):
                    await client.add_member([config.peer_url])
                    members = [m async for m in client.members()]
                break
            except aetcd.exceptions.ClientError as err:
                # etcd refuses a new member until every member has been connected for a few
                # seconds ("unhealthy cluster"), as after the previous join: that passes.
                if "unhealthy cluster" not in str(err) or asyncio.get_running_loop().time() > deadline:
                    raise MemberError(f"cannot add an etcd member through {store_url}: {err}") from None
                await asyncio.sleep(1.0)  # etcd's own health window is seconds long
    finally:
        await client.close()
    initial = []
    for member in members:
        if config.peer_url in member.peer_urls:
            initial.append(f"{config.name}={config.peer_url}")
            continue
        if not member.name:
            raise MemberError(
                f"etcd member {member.peer_urls} was added but never started: start it (or remove it "
                "with `etcdctl member remove`) before adding another"
            )
        initial.append(",".join(f"{member.name}={url}" for url in member.peer_urls))
    return ",".join(initial)


async def _refreshed(config: MemberConfig, data_dir: Path, *, request_seconds: int = 5) -> MemberConfig:
    """``config`` with a store URL naming every member the cluster has now (saved when it
    changed), so that this manager reaches the store through the others should its own member
    fail; ``config`` unchanged when the member list cannot be read."""
    import aetcd

    client = aetcd.Client(host=config.host, port=config.client_port, timeout=request_seconds)
    try:
        members = [m async for m in client.members()]
    except aetcd.exceptions.ClientError as err:
        log.warning("cannot list the etcd members (%s); keeping %s", err, config.store_url)
        return config
    finally:
        await client.close()
    others = {url.removeprefix("http://") for m in members for url in m.client_urls} - {config.endpoint}
    store_url = "etcd://" + ",".join([config.endpoint, *sorted(others)])
    if store_url == config.store_url:
        return config
    updated = dataclasses.replace(config, store_url=store_url)
    updated.save(data_dir)
    return updated


@contextlib.asynccontextmanager
async def running(
    config: MemberConfig, data_dir: Path, *, initial_cluster: str = "", state: str = "new"
) -> AsyncIterator[MemberConfig]:
    """The member of ``config`` running (its data in ``data_dir/etcd``) while the block runs,
    healthy before the block starts; stopped on the way out. ``initial_cluster`` and ``state``
    matter only the first time (etcd ignores them once it has data). The block gets ``config``
    with a store URL naming every member the cluster has now (``_refreshed``)."""
    member_dir = data_dir / DATA_DIR
    argv = [
        *_die_with_parent(),
        etcd_binary(),
        "--name", config.name,
        "--data-dir", str(member_dir),
        "--listen-client-urls", config.client_url,
        "--advertise-client-urls", config.client_url,
        "--listen-peer-urls", config.peer_url,
        "--initial-advertise-peer-urls", config.peer_url,
        "--initial-cluster", initial_cluster or f"{config.name}={config.peer_url}",
        "--initial-cluster-state", state,
        "--initial-cluster-token", "shoal",
        # Quicker elections than etcd's defaults (100 ms / 1 s), for machines on one network.
        "--heartbeat-interval", "100",
        "--election-timeout", "1000",
    ]  # fmt: skip
    with open(data_dir / LOG_FILE, "ab") as log_file:  # noqa: ASYNC230 (once, before the member runs)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        await _until_healthy(config, process, data_dir / LOG_FILE)
        log.info("etcd member %s serving at %s", config.name, config.client_url)
        yield await _refreshed(config, data_dir)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until_healthy(config: MemberConfig, process: asyncio.subprocess.Process, log_path: Path) -> None:
    """Wait until the member answers its health check (it then has a leader), or fail naming
    its log when it exits or takes longer than START_TIMEOUT."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if process.returncode is not None:
                raise MemberError(f"etcd member {config.name} exited ({process.returncode}); see {log_path}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = (await http.get(f"{config.client_url}/health")).json()
                if str(answer.get("health")) == "true":
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise MemberError(
                    f"etcd member {config.name} not healthy after {START_TIMEOUT:.0f}s; see {log_path}"
                )
            await asyncio.sleep(0.1)  # polling a child process's HTTP port: nothing to await on
