"""API benchmark: creates per second and latency over HTTPS and in-process, and watch fan-out.

Prints one JSON document. Runs every measurement twice, interleaved (A B A B), because these
machines are noisy; report both rounds.

    .venv/bin/python bench/api.py [--quick]

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
                self.token = asyncio.run(admin_token(self.kubeconfig))
                return
        raise RuntimeError("shoal server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


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


def wrk_closed_loop(url: str, token: str, prefix: str, connections: int, seconds: int) -> dict[str, float]:
    script = Path(__file__).with_name("wrk_create.lua")
    out = subprocess.run(
        [
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
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(text for text in out.splitlines() if text.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    ok = data["requests"] - data["non_2xx"]
    if not ok:
        raise RuntimeError(f"wrk: none of {data['requests']} creates succeeded (refused: {data['non_2xx']})")
    return {
        "creates": ok,
        "refused": data["non_2xx"],
        "creates_per_s": round(ok / (data["duration_us"] / 1e6), 1),
        "p50_ms": round(data["p50_us"] / 1000, 2),
        "p99_ms": round(data["p99_us"] / 1000, 2),
    }


def run_http_client(kubeconfig: Path, mode: str, ns: str, arg: int, total: int, out: Any) -> None:
    """Runs in a separate process so that client and server do not share one interpreter."""
    if mode == "closed":
        result = asyncio.run(closed_loop(kubeconfig, ns, arg, total))
    else:
        result = asyncio.run(fixed_rate(kubeconfig, ns, float(arg), total / arg))
    out.send(result)


def in_other_process(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    proc = multiprocessing.Process(target=target, args=(*args, sender))
    proc.start()
    sender.close()
    try:
        result: dict[str, Any] = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the benchmark client process failed (exit {proc.exitcode})") from None
    finally:
        proc.join()
    return result


async def in_process(store_url: str, concurrency: int, total: int) -> dict[str, float]:
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
                await client.create(kind, config_map(f"cm-{i}"), "default")
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


def watch_fanout(kubeconfig: Path, ns: str, watchers: int, events: int, rate: float) -> dict[str, Any]:
    with httpx.Client(**http_options(kubeconfig), timeout=30) as http:
        expect_created(
            http.post(
                "/api/v1/namespaces",
                content=orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
        )
        ready_r, ready_w = multiprocessing.Pipe(duplex=False)
        out_r, out_w = multiprocessing.Pipe(duplex=False)
        proc = multiprocessing.Process(
            target=run_watchers, args=(kubeconfig, ns, watchers, events, ready_w, out_w)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    total = 1000 if args.quick else 4000
    rounds = 1 if args.quick else 2
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "in_process_event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, rounds + 1):
            round_out: dict[str, Any] = {}
            server = Server(Path(tmp) / f"http-{r}")
            try:
                for c in (1, 8, 32):
                    if shutil.which("wrk"):
                        seconds = 3 if args.quick else 8
                        round_out[f"https_wrk_c{c}"] = wrk_closed_loop(
                            server.url, server.token, f"r{r}c{c}", c, seconds
                        )
                    count = total // 4 if c == 1 else total
                    round_out[f"https_python_c{c}"] = in_other_process(
                        run_http_client, server.kubeconfig, "closed", f"r{r}c{c}", c, count
                    )
                round_out["https_fixed_200_per_s"] = in_other_process(
                    run_http_client,
                    server.kubeconfig,
                    "fixed",
                    f"r{r}fixed",
                    200,
                    2000 if not args.quick else 600,
                )
                for rate in (20, 200):
                    round_out[f"watch_fanout_{rate}_per_s"] = watch_fanout(
                        server.kubeconfig, f"r{r}watch{rate}", 100, 200 if not args.quick else 40, rate=rate
                    )
            finally:
                server.stop()
            for backend in ("sqlite", "memory"):
                for c in (1, 32):
                    url = f"sqlite:///{tmp}/inproc-{r}-{c}.db" if backend == "sqlite" else "memory://"
                    count = total * 2 if c == 32 else total
                    round_out[f"in_process_{backend}_c{c}"] = run_loop(in_process(url, c, count))
            results[f"round_{r}"] = round_out
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
