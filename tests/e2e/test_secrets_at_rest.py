"""Secrets at rest, end to end: a real ``shoal server`` on a real SQLite file; a Secret
created through the API leaves no trace of its value (nor of its base64) in the database file
or its write-ahead log, before or after a checkpoint; and the creation is in the audit log.
With ``shoal init --autolock``, a restarted manager serves everything but Secrets until
``shoal unlock`` is given the key printed at init."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
from pathlib import Path

from tests.conftest import SHOAL, start_shoal_server, stop_shoal_server
from tests.helpers import LineReader, wait_until


def _store_bytes(data_dir: Path) -> bytes:
    return b"".join(
        path.read_bytes() for path in sorted(data_dir.glob("state.db*")) if path.suffix != ".lock"
    )


def test_no_secret_bytes_in_the_sqlite_file(tmp_path: Path) -> None:
    server = start_shoal_server(tmp_path / "data")
    value = "v-" + secrets.token_hex(24)
    encoded = base64.b64encode(value.encode())
    try:
        done = subprocess.run(
            [SHOAL, "secret", "create", "db-pass", "-"],
            input=value,
            capture_output=True,
            text=True,
            timeout=60,
            env=server.env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # The API gives it back (decrypted on the way out) ...
        got = subprocess.run(
            [SHOAL, "get", "secret", "db-pass", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=server.env(),
            check=False,
        )
        assert got.returncode == 0, got.stderr
        assert base64.b64decode(json.loads(got.stdout)["data"]["db-pass"]).decode() == value
        # ... while the file and its WAL, as they are now, hold only ciphertext.
        stored = _store_bytes(server.data_dir)
        assert b"shoal:aesgcm:v1:" in stored
        assert value.encode() not in stored and encoded not in stored
    finally:
        assert stop_shoal_server(server) == 0
    stored = _store_bytes(server.data_dir)  # after the checkpoint on close
    assert b"db-pass" in stored  # the key is there (it names the object) ...
    assert value.encode() not in stored and encoded not in stored  # ... the value is not
    records = [json.loads(line) for line in (server.data_dir / "audit.log").read_text().splitlines()]
    creates = [
        r for r in records if (r["verb"], r["resource"], r["name"]) == ("create", "/secrets", "db-pass")
    ]
    assert len(creates) == 1 and creates[0]["code"] == 201
    assert value not in (server.data_dir / "audit.log").read_text()


AUTOLOCK = ("--autolock", "--no-agent")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_manager(data_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[str], LineReader]:
    with log.open("a") as stderr:
        process = subprocess.Popen(
            [SHOAL, "init", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", *AUTOLOCK],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "SHOAL_DATA_DIR": str(data_dir)},
        )
    return process, LineReader(process.stdout)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_autolock_a_restarted_manager_keeps_secrets_locked_until_shoal_unlock(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", _free_port(), tmp_path / "manager.log"
    data_dir.mkdir()
    env = {**os.environ, "SHOAL_KUBECONFIG": str(data_dir / "kubeconfig"), "SHOAL_DATA_DIR": str(data_dir)}

    def shoal(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SHOAL, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False
        )

    process, output = _start_manager(data_dir, port, log)
    try:
        line = output.wait_for(lambda text: "SHOALKEY-1-" in text, timeout=30)
        unlock_key = line.strip()
        output.wait_for(lambda text: "ready at" in text, timeout=30)
        assert shoal("secret", "create", "db", "-", stdin="hunter2").returncode == 0
    finally:
        _stop(process)

    process, output = _start_manager(data_dir, port, log)
    try:
        # Secrets are refused with the reason; everything else is served.
        wait_until(lambda: "locked" in shoal("get", "secret", "db").stderr, timeout=30)
        refused = shoal("get", "secret", "db")
        assert refused.returncode == 1 and "the cluster is locked: run `shoal unlock`" in refused.stderr
        assert shoal("get", "namespaces").returncode == 0
        assert not any("SHOALKEY-1-" in seen for seen in output.seen)  # printed once, at init only

        wrong = shoal("unlock", stdin="SHOALKEY-1-" + base64.urlsafe_b64encode(b"w" * 32).decode() + "\n")
        assert wrong.returncode == 1 and "unlock key is wrong" in wrong.stderr
        assert shoal("get", "secret", "db").returncode == 1

        right = shoal("unlock", stdin=unlock_key + "\n")
        assert right.returncode == 0 and "unlocked" in right.stdout, right.stderr
        output.wait_for(lambda text: "ready at" in text, timeout=30)  # the join command once open
        got = shoal("get", "secret", "db", "-o", "json")
        assert got.returncode == 0, got.stderr
        assert base64.b64decode(json.loads(got.stdout)["data"]["db"]) == b"hunter2"
    finally:
        _stop(process)
