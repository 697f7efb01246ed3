"""Helpers shared by tests: waiting on conditions and on process output, never sleeping blind."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from shoal.client.kubeconfig import read as read_kubeconfig
from shoal.security.tls import client_context_from_pem

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


class LineReader:
    """Reads a process's output on a thread so a test can wait for a line with a timeout."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, match: Callable[[str], bool], timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s; output so far: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process ended; output: {self.seen}")
            self.seen.append(line)
            if match(line):
                return line


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``marker``: how tests find the
    workloads they started, which outlive their agents by design."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def _kube_client_options(kubeconfig: Path, timeout: float) -> dict[str, Any]:
    connection = read_kubeconfig(kubeconfig)
    creds = connection.credentials
    return {
        "base_url": connection.server,
        "verify": client_context_from_pem(creds.ca_pem, creds.cert_pem, creds.key_pem),
        "headers": {"Authorization": f"Bearer {creds.token}"} if creds.token else {},
        "timeout": timeout,
    }


def kube_http(kubeconfig: Path, *, timeout: float = 30.0) -> httpx.Client:
    """An httpx client with a kubeconfig's server and credentials (the cluster CA, a client
    certificate or token), as kubectl would connect: ``kube_http(k).get("/api/v1/nodes")``."""
    return httpx.Client(**_kube_client_options(kubeconfig, timeout))


def async_kube_http(kubeconfig: Path, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """``kube_http`` for asyncio."""
    return httpx.AsyncClient(**_kube_client_options(kubeconfig, timeout))


def running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods that run and are not being deleted: what a workload counts as up."""
    return [
        p
        for p in pods
        if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def ready(nodes: list[dict[str, Any]]) -> set[str]:
    """The names of the nodes whose Ready condition is True."""
    return {
        n["metadata"]["name"]
        for n in nodes
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
        )
    }


def kubectl(
    config: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real kubectl with ``config``; fails the test on an error unless ``check`` is off."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done
