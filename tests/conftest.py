"""Fixtures shared across test folders."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import LineReader

SHOAL = str(Path(sys.executable).with_name("shoal"))  # the console script of this venv


@dataclass
class ShoalServer:
    """A real ``shoal server`` process on a free loopback port."""

    url: str
    data_dir: Path
    kubeconfig: Path
    process: subprocess.Popen[str]
    output: LineReader  # its stdout, still being read
    log: Path  # its stderr

    def env(self) -> dict[str, str]:
        """An environment in which ``shoal`` (and kubectl) talk to this server."""
        return {
            **os.environ,
            "SHOAL_KUBECONFIG": str(self.kubeconfig),
            "KUBECONFIG": str(self.kubeconfig),
            "SHOAL_DATA_DIR": str(self.data_dir),
        }


def start_shoal_server(data_dir: Path, *extra: str, timeout: float = 30.0) -> ShoalServer:
    """Start ``shoal server`` and wait (without sleeping) for its ready line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [SHOAL, "server", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "SHOAL_DATA_DIR": str(data_dir)},
        )
    output = LineReader(process.stdout)
    try:
        line = output.wait_for(lambda text: "ready at http" in text, timeout=timeout)
    except AssertionError as err:
        process.kill()
        process.wait()
        raise AssertionError(f"shoal server did not start: {err}\n{log.read_text()}") from None
    match = re.search(r"(https?://[^\s;]+)", line)
    assert match, line
    return ShoalServer(match.group(1), data_dir, data_dir / "kubeconfig", process, output, log)


def stop_shoal_server(server: ShoalServer) -> int:
    """SIGTERM, then wait; returns the exit status."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="module")
def shoal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalServer]:
    """A real API server process for the tests of one module."""
    server = start_shoal_server(tmp_path_factory.mktemp("shoal-server"))
    try:
        yield server
    finally:
        stop_shoal_server(server)
