"""API benchmark: creates per second and latency over HTTPS and in-process, and watch fan-out.

Prints one JSON document. Runs every measurement twice, interleaved (A B A B), because these
machines are noisy; report both rounds.

    .venv/bin/python bench/api.py [--quick] [--store sqlite|etcd] [--managers 1|3]
    .venv/bin/python bench/api.py --compare [--quick]

The server serves HTTPS only, every request authenticated and authorized. The Python (httpx)
clients connect as kubectl does, with the kubeconfig `shoal server` writes (the cluster CA and
the admin's client certificate); wrk cannot present a client certificate, so it sends an admin
bearer token (a user in system:masters) that the benchmark makes first. Connections are kept
alive: the TLS handshake is paid once per connection, not per create.

Measurements:
- https_wrk_cN: N connections each creating ConfigMaps back to back over HTTPS against a real
  `shoal server` process (sqlite store), driven by wrk (C) so that the load generator does
  not eat the CPU the server needs: creates/s, p50, p99 (needs Debian's wrk);
- https_python_cN: the same with N concurrent Python (httpx) clients in another process,
  which is what a Python caller sees (the client costs as much CPU as the server);
- https_fixed_200_per_s: creates sent at a fixed 200/s (open loop): p50, p99;
- in_process: the same creates through the in-process client (sqlite and memory stores);
- watch_fanout_R_per_s: 100 HTTPS watchers on one namespace while ConfigMaps are created at R
  per second; every watcher must see every event; delay from just before the create is sent
  to the watcher reading the event.

Stores and managers. By default (--store sqlite) the server is `shoal server` on sqlite, as
above. With --store etcd each round starts a fresh 3-member etcd cluster on loopback
(tests/etcd_cluster.py) and --managers manager processes over it (`shoal init --store etcd://…
--no-agent`, and with 3 managers two `shoal join --manager`): the same measurements, where
- wrk's creates are spread over every manager at once, one wrk per manager splitting the
  connections (8 → 3/3/2): creates/s is their sum, p50 and p99 come from their latency
  histograms merged (at 1 connection only the first manager is loaded);
- the Python clients and the fixed rate go to the first manager; with several managers the
  watchers watch through the last one while the creates go through the first (an event
  travels through etcd from one manager to another);
- in_process also measures the etcd store (a client of the same etcd cluster).

--compare runs the comparison side by side in one run: sqlite with 1 manager, etcd with 1
manager and etcd with 3 managers, each a fresh cluster of `shoal init --no-agent` processes (so
the store and the number of managers are all that differ), interleaved A B C A B C over two
rounds, measuring wrk at 8 connections (spread over the managers as above) and one Python
client (to the first manager): creates/s, p50 and p99 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

CM_PATH = "/api/v1/namespaces/{ns}/configmaps"
T = TypeVar("T")
# Client processes are spawned, not forked: the parent may hold gRPC threads (the etcd
# cluster's health checks), and a fork with them can deadlock the child.
MP = multiprocessing.get_context("spawn")
WRK_CREATE = Path(__file__).resolve().with_name("wrk_create.lua")
# wrk_create.lua, plus its latency histogram ("microseconds:count" pairs), so that the
# latencies of several wrk processes (one per manager) can be merged into one distribution,
# and the first few refusals (status and body) of each thread, to say why creates failed.
WRK_HISTOGRAM = f"""dofile({json.dumps(str(WRK_CREATE))})
local refusals = 0
response = function(status, headers, body)
  if status >= 300 and refusals < 3 then
    refusals = refusals + 1
    io.write("WRK_REFUSED " .. status .. " " .. string.sub(string.gsub(body, "\\n", " "), 1, 300) .. "\\n")
  end
end
local summary_done = done
done = function(summary, latency, requests)
  summary_done(summary, latency, requests)
  local parts = {{}}
  local i = 1
  while true do
    local value, count = latency(i)
    if value == 0 or count == 0 then break end
    parts[#parts + 1] = string.format("%d:%d", value, count)
    i = i + 1
  end
  io.write("WRK_HIST " .. table.concat(parts, ",") .. "\\n")
end
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    return {
        "creates": len(latencies),
        "creates_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def config_map(name: str, sent: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"bench": "api"}}
    if sent is not None:
        meta["annotations"] = {"bench/sent": repr(sent)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"key": "value" * 8}}


def http_options(kubeconfig: Path) -> dict[str, Any]:
    """httpx options for a kubeconfig: its server, and its credentials (the cluster CA and the
    admin's client certificate) as an SSL context. Each client process makes its own."""
    from shoal.client.kubeconfig import read
    from shoal.security.tls import client_context_from_pem

    connection = read(kubeconfig)
    creds = connection.credentials
    headers = {"Authorization": f"Bearer {creds.token}"} if creds.token else {}
    verify = client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem)
    return {"base_url": connection.server, "verify": verify, "headers": headers}


async def admin_token(kubeconfig: Path) -> str:
    """A bearer token for an admin (group system:masters), made through the API with the
    kubeconfig's credentials: what wrk sends, as it cannot present a client certificate."""
    from shoal.client.http import HttpClient
    from shoal.client.kubeconfig import read
    from shoal.security.usertokens import create_token

    connection = read(kubeconfig)
    client = HttpClient(connection.server, credentials=connection.credentials)
    try:
        return await create_token(client, "bench-wrk", groups=("system:masters",), ttl=3600)
    finally:
        await client.close()


class Server:
    """A real `shoal server` process on a fresh data dir; ``kubeconfig`` holds the admin's
    credentials, ``token`` is an admin bearer token for wrk."""

    def __init__(self, data_dir: Path) -> None:
        self.kubeconfig = data_dir / "kubeconfig"
        self.kubeconfigs = [self.kubeconfig]
        self.token = ""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "server",
                "--data-dir",
                str(data_dir),
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("shoal server exited before it was ready")
            match = re.search(r"ready at (https://[^\s;,]+)", line)
            if match:
                self.url = match.group(1)
                self.urls = [self.url]
                self.token = asyncio.run(admin_token(self.kubeconfig))
                return
        raise RuntimeError("shoal server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Managed:
    """``managers`` manager processes (`shoal init --no-agent`, then `shoal join --manager`) on
    fresh data dirs over ``store``: "sqlite" (in the first manager's data dir; one manager
    only) or "etcd" (a fresh 3-member etcd cluster on loopback). ``urls`` and ``kubeconfigs``
    are the managers' (first one first); ``token`` is an admin bearer token for wrk."""

    def __init__(self, root: Path, store: str, managers: int) -> None:
        from ha import Managers  # puts the repository (tests/) on the path

        from tests.etcd_cluster import EtcdCluster

        if store == "sqlite" and managers != 1:
            raise ValueError("several managers need a shared store: --store etcd")
        self.etcd = EtcdCluster.start(root / "etcd", members=3) if store == "etcd" else None
        self.managers = Managers(root, self.etcd.url if self.etcd else "")
        try:
            self.managers.start(managers)
            self.urls = [m.url for m in self.managers.managers]
            self.kubeconfigs = [m.kubeconfig for m in self.managers.managers]
            self.kubeconfig = self.kubeconfigs[0]
            self.store_url = self.etcd.url if self.etcd else ""
            self.token = asyncio.run(admin_token(self.kubeconfig))
            self.token_accepted_after_s = token_accepted(self.kubeconfig, self.urls, self.token)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.managers.close()
        finally:
            if self.etcd is not None:
                self.etcd.close()


def token_accepted(kubeconfig: Path, urls: list[str], token: str, timeout: float = 30.0) -> list[float]:
    """Wait until every manager accepts the new bearer token; how long each took, in seconds.

    A manager knows tokens from its security cache, which follows the tokens' Secret by watch:
    over etcd the Secret reaches a manager's cache a little after the create returned (on sqlite
    the watch is in-process), and until then the token is refused (401)."""
    from shoal.client.kubeconfig import read
    from shoal.security.tls import client_context_from_pem

    verify = client_context_from_pem(read(kubeconfig).credentials.ca_pem)  # no client certificate
    start = time.monotonic()
    waited = []
    for url in urls:
        with httpx.Client(base_url=url, verify=verify, headers={"Authorization": f"Bearer {token}"}) as http:
            while http.get("/api/v1/namespaces/default").status_code != 200:
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"{url} did not accept the admin token within {timeout} s")
                time.sleep(0.005)  # the Secret is on its way to that manager's cache
        waited.append(round(time.monotonic() - start, 3))
    return waited


def expect_created(response: httpx.Response) -> None:
    assert response.status_code == 201, response.text


async def closed_loop(kubeconfig: Path, ns: str, concurrency: int, total: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(**http_options(kubeconfig), limits=limits, timeout=30) as http:
        expect_created(
            await http.post(
                "/api/v1/namespaces",
                content=orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
        )
        latencies: list[float] = []
        counter = iter(range(total))

        async def worker() -> None:
            for i in counter:
                body = orjson.dumps(config_map(f"cm-{i}"))
                start = time.perf_counter()
                response = await http.post(CM_PATH.format(ns=ns), content=body)
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 201, response.text

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for _ in range(concurrency):
                tasks.create_task(worker())
        return summary(latencies, time.perf_counter() - start)


async def fixed_rate(kubeconfig: Path, ns: str, rate: float, seconds: float) -> dict[str, float]:
    async with httpx.AsyncClient(
        **http_options(kubeconfig),
        timeout=30,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    ) as http:
        expect_created(
            await http.post(
                "/api/v1/namespaces",
                content=orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
        )
        latencies: list[float] = []

        async def one(i: int) -> None:
            start = time.perf_counter()
            response = await http.post(CM_PATH.format(ns=ns), content=orjson.dumps(config_map(f"cm-{i}")))
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 201, response.text

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for i in range(int(rate * seconds)):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.create_task(one(i))
        result = summary(latencies, time.perf_counter() - start)
        result["target_rate"] = rate
        return result


def wrk_command(url: str, token: str, prefix: str, connections: int, seconds: int, script: Path) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        "-s",
        str(script),
        url,
        "--",
        prefix,
    ]


def wrk_result(out: str) -> dict[str, Any]:
    """wrk's WRK_JSON line as creates/s, p50 and p99; ``histogram`` when the script printed one."""
    line = next(text for text in out.splitlines() if text.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    ok = data["requests"] - data["non_2xx"]
    lines = out.splitlines()
    refusals = [text.removeprefix("WRK_REFUSED ") for text in lines if text.startswith("WRK_REFUSED ")]
    if not ok:
        raise RuntimeError(
            f"wrk: none of {data['requests']} creates succeeded (refused: {data['non_2xx']}) {refusals}"
        )
    result: dict[str, Any] = {
        "creates": ok,
        "refused": data["non_2xx"],
        "creates_per_s": round(ok / (data["duration_us"] / 1e6), 1),
        "p50_ms": round(data["p50_us"] / 1000, 2),
        "p99_ms": round(data["p99_us"] / 1000, 2),
    }
    if refusals:
        result["first_refusals"] = refusals
    hist = next((text for text in lines if text.startswith("WRK_HIST ")), None)
    if hist is not None:
        pairs = (pair.split(":") for pair in hist.removeprefix("WRK_HIST ").split(",") if pair)
        result["histogram"] = {int(value): int(count) for value, count in pairs}
    return result


def histogram_percentile(histogram: dict[int, int], q: float) -> float:
    """The q-quantile of a {value: count} histogram (the value below which q of the samples lie)."""
    total = sum(histogram.values())
    rank, seen = q * total, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return float("nan")


def wrk_spread(urls: list[str], token: str, prefix: str, connections: int, seconds: int) -> dict[str, Any]:
    """wrk against every manager at once, one wrk each, splitting the connections (8 over 3 →
    3/3/2; a manager left without one is not loaded). Creates/s is the sum; p50 and p99 are of
    the merged latencies; ``per_manager`` holds each wrk's own figures (with one manager, the
    same as ``wrk_closed_loop`` gives, plus the first refusals if any)."""
    shares = [connections // len(urls) + (1 if i < connections % len(urls) else 0) for i in range(len(urls))]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "wrk_histogram.lua"
        script.write_text(WRK_HISTOGRAM)
        procs = [
            subprocess.Popen(
                wrk_command(url, token, f"{prefix}m{i}", share, seconds, script),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, (url, share) in enumerate(zip(urls, shares, strict=True))
            if share
        ]
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            if proc.returncode:
                raise RuntimeError(f"wrk exited with {proc.returncode}: {err}")
            outputs.append(wrk_result(out))
    merged: dict[int, int] = {}
    for result in outputs:
        for value, count in result.pop("histogram").items():
            merged[value] = merged.get(value, 0) + count
    if len(outputs) == 1:
        return outputs[0]
    return {
        "creates": sum(r["creates"] for r in outputs),
        "refused": sum(r["refused"] for r in outputs),
        "creates_per_s": round(sum(r["creates_per_s"] for r in outputs), 1),
        "p50_ms": round(histogram_percentile(merged, 0.50) / 1000, 2),
        "p99_ms": round(histogram_percentile(merged, 0.99) / 1000, 2),
        "connections_per_manager": [share for share in shares if share],
        "per_manager": outputs,
    }


def wrk_closed_loop(url: str, token: str, prefix: str, connections: int, seconds: int) -> dict[str, Any]:
    out = subprocess.run(
        wrk_command(url, token, prefix, connections, seconds, WRK_CREATE),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return wrk_result(out)


def run_http_client(kubeconfig: Path, mode: str, ns: str, arg: int, total: int, out: Any) -> None:
    """Runs in a separate process so that client and server do not share one interpreter."""
    if mode == "closed":
        result = asyncio.run(closed_loop(kubeconfig, ns, arg, total))
    else:
        result = asyncio.run(fixed_rate(kubeconfig, ns, float(arg), total / arg))
    out.send(result)


def in_other_process(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    receiver, sender = MP.Pipe(duplex=False)
    proc = MP.Process(target=target, args=(*args, sender))
    proc.start()
    sender.close()
    try:
        result: dict[str, Any] = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the benchmark client process failed (exit {proc.exitcode})") from None
    finally:
        proc.join()
    return result


async def in_process(store_url: str, concurrency: int, total: int, prefix: str = "") -> dict[str, float]:
    from shoal.api import REGISTRY
    from shoal.client.local import LocalClient
    from shoal.server.resources import Resources
    from shoal.store import open_store

    store = await open_store(store_url)
    try:
        resources = Resources(store)
        await resources.bootstrap()
        client = LocalClient(resources)
        kind = REGISTRY.lookup("configmaps")
        assert kind is not None
        latencies: list[float] = []
        counter = iter(range(total))

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                await client.create(kind, config_map(f"{prefix}cm-{i}"), "default")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            for _ in range(concurrency):
                tasks.create_task(worker())
        return summary(latencies, time.perf_counter() - start)
    finally:
        await store.close()


def run_watchers(kubeconfig: Path, ns: str, watchers: int, events: int, ready: Any, out: Any) -> None:
    async def main() -> dict[str, Any]:
        delays: list[float] = []
        counts = [0] * watchers
        limits = httpx.Limits(max_connections=watchers + 4, max_keepalive_connections=watchers + 4)
        async with httpx.AsyncClient(
            **http_options(kubeconfig), timeout=httpx.Timeout(60, read=None), limits=limits
        ) as http:
            listing = await http.get(CM_PATH.format(ns=ns))
            assert listing.status_code == 200, listing.text
            rv = listing.json()["metadata"]["resourceVersion"]
            opened = 0

            async def watch(index: int) -> None:
                nonlocal opened
                params = {"watch": "1", "resourceVersion": rv}
                async with http.stream("GET", CM_PATH.format(ns=ns), params=params) as response:
                    assert response.status_code == 200, await response.aread()
                    opened += 1
                    if opened == watchers:
                        ready.send(True)
                    async for line in response.aiter_lines():
                        now = time.time()
                        event = orjson.loads(line)
                        sent = float(event["object"]["metadata"]["annotations"]["bench/sent"])
                        delays.append(now - sent)
                        counts[index] += 1
                        if counts[index] == events:
                            return

            async with asyncio.timeout(120), asyncio.TaskGroup() as tasks:
                for i in range(watchers):
                    tasks.create_task(watch(i))
        return {
            "watchers": watchers,
            "events": events,
            "every_watcher_saw_every_event": all(c == events for c in counts),
            "delivery_p50_ms": round(percentile(delays, 0.5) * 1000, 2),
            "delivery_p99_ms": round(percentile(delays, 0.99) * 1000, 2),
            "delivery_max_ms": round(max(delays) * 1000, 2),
        }

    out.send(asyncio.run(main()))


def watch_fanout(
    kubeconfig: Path, ns: str, watchers: int, events: int, rate: float, watch_kubeconfig: Path | None = None
) -> dict[str, Any]:
    """Creates through ``kubeconfig``'s server; watches through ``watch_kubeconfig``'s (the same
    by default)."""
    with httpx.Client(**http_options(kubeconfig), timeout=30) as http:
        expect_created(
            http.post(
                "/api/v1/namespaces",
                content=orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
        )
        ready_r, ready_w = MP.Pipe(duplex=False)
        out_r, out_w = MP.Pipe(duplex=False)
        proc = MP.Process(
            target=run_watchers, args=(watch_kubeconfig or kubeconfig, ns, watchers, events, ready_w, out_w)
        )
        proc.start()
        if not ready_r.poll(60):
            raise RuntimeError("watchers did not start")
        ready_r.recv()
        start = time.perf_counter()
        for i in range(events):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            body = orjson.dumps(config_map(f"w-{i}", time.time()))
            expect_created(http.post(CM_PATH.format(ns=ns), content=body))
        result: dict[str, Any] = out_r.recv()
        proc.join()
        result["create_rate"] = rate
        return result


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed, as the manager process does (shoal's dependencies bring it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def full_round(
    target: Server | Managed, r: int, total: int, quick: bool, store_url: str, tmp: str
) -> dict[str, Any]:
    """Every measurement once against ``target`` (stopped at the end), then in-process."""
    round_out: dict[str, Any] = {}
    if isinstance(target, Managed):
        round_out["token_accepted_after_s"] = target.token_accepted_after_s
    try:
        for c in (1, 8, 32):
            if shutil.which("wrk"):
                seconds = 3 if quick else 8
                if isinstance(target, Server):  # as before: wrk_create.lua alone
                    wrk = wrk_closed_loop(target.url, target.token, f"r{r}c{c}", c, seconds)
                else:
                    wrk = wrk_spread(target.urls, target.token, f"r{r}c{c}", c, seconds)
                round_out[f"https_wrk_c{c}"] = wrk
            count = total // 4 if c == 1 else total
            round_out[f"https_python_c{c}"] = in_other_process(
                run_http_client, target.kubeconfig, "closed", f"r{r}c{c}", c, count
            )
        round_out["https_fixed_200_per_s"] = in_other_process(
            run_http_client,
            target.kubeconfig,
            "fixed",
            f"r{r}fixed",
            200,
            2000 if not quick else 600,
        )
        for rate in (20, 200):
            round_out[f"watch_fanout_{rate}_per_s"] = watch_fanout(
                target.kubeconfig,
                f"r{r}watch{rate}",
                100,
                200 if not quick else 40,
                rate=rate,
                watch_kubeconfig=target.kubeconfigs[-1],
            )
    finally:
        if isinstance(target, Managed):
            target.managers.close()  # its etcd cluster stays up for the in-process measurement
        else:
            target.stop()
    try:
        backends = ("sqlite", "memory", "etcd") if store_url else ("sqlite", "memory")
        for backend in backends:
            for c in (1, 32):
                url = {"sqlite": f"sqlite:///{tmp}/inproc-{r}-{c}.db", "memory": "memory://"}.get(
                    backend, store_url
                )
                count = total * 2 if c == 32 else total
                prefix = f"inproc{c}-" if backend == "etcd" else ""  # one etcd for both runs
                round_out[f"in_process_{backend}_c{c}"] = run_loop(in_process(url, c, count, prefix))
    finally:
        if isinstance(target, Managed):
            target.stop()
    return round_out


COMPARED = (("sqlite", 1), ("etcd", 1), ("etcd", 3))


def compare(tmp: Path, quick: bool) -> dict[str, Any]:
    """sqlite/1 manager, etcd/1 manager and etcd/3 managers side by side, A B C A B C."""
    seconds = 3 if quick else 8
    python_creates = 250 if quick else 1000
    out: dict[str, Any] = {
        "sizes": {
            "rounds": 2,
            "order": [f"{store}_{n}_manager{'s' if n > 1 else ''}" for store, n in COMPARED] * 2,
            "wrk": f"8 connections for {seconds} s, spread over the managers",
            "python_c1": f"{python_creates} creates by one httpx client, to the first manager",
            "managers": "`shoal init --no-agent` (+ `shoal join --manager`), fresh data dirs each time",
            "etcd": "a fresh 3-member cluster on loopback each time (heartbeat 50 ms, election 500 ms)",
        }
    }
    for r in (1, 2):
        for store, managers in COMPARED:
            name = f"{store}_{managers}_manager{'s' if managers > 1 else ''}"
            log(f"round {r}: {name}")
            target = Managed(tmp / f"{name}-{r}", store, managers)
            try:
                result = {
                    "token_accepted_after_s": target.token_accepted_after_s,
                    "https_wrk_c8": wrk_spread(target.urls, target.token, f"r{r}", 8, seconds),
                    "https_python_c1": in_other_process(
                        run_http_client, target.kubeconfig, "closed", f"r{r}c1", 1, python_creates
                    ),
                }
            finally:
                target.stop()
            out.setdefault(name, {})[f"round_{r}"] = result
    out["side_by_side"] = {
        name: {
            measurement: {
                figure: [out[name][f"round_{r}"][measurement][figure] for r in (1, 2)]
                for figure in ("creates_per_s", "p50_ms", "p99_ms")
            }
            for measurement in ("https_wrk_c8", "https_python_c1")
        }
        for name in out["sizes"]["order"][:3]
    }
    return out


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite")
    parser.add_argument("--managers", type=int, choices=(1, 3), default=1)
    parser.add_argument(
        "--compare", action="store_true", help="sqlite/1, etcd/1 and etcd/3 managers side by side"
    )
    args = parser.parse_args()
    if args.store == "sqlite" and args.managers != 1:
        parser.error("several managers need a shared store: --store etcd")
    # SIGTERM ends the run through the finally clauses: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    total = 1000 if args.quick else 4000
    rounds = 1 if args.quick else 2
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "in_process_event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            results["compare"] = compare(Path(tmp), args.quick)
        else:
            results["store"], results["managers"] = args.store, args.managers
            for r in range(1, rounds + 1):
                log(f"round {r}")
                if args.store == "sqlite":
                    target: Server | Managed = Server(Path(tmp) / f"http-{r}")
                else:
                    target = Managed(Path(tmp) / f"http-{r}", args.store, args.managers)
                store_url = target.store_url if isinstance(target, Managed) else ""
                results[f"round_{r}"] = full_round(target, r, total, args.quick, store_url, tmp)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
