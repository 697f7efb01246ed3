"""Join tokens through the real server process and the real ``shoal token`` command."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx

from tests.conftest import SHOAL


def shoal(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOAL, *args], env=server.env(), capture_output=True, text=True, timeout=30)


def join(server: Any, token: str, node: str = "node-1") -> httpx.Response:
    return httpx.post(f"{server.url}/shoal/v1/join", json={"token": token, "nodeName": node}, timeout=10)


def test_the_current_token_joins_a_wrong_or_rotated_one_is_refused(shoal_server: Any) -> None:
    shown = shoal(shoal_server, "token", "show")
    assert shown.returncode == 0, shown.stderr
    token = shown.stdout.strip()
    assert token.startswith("SHOAL-1-") and f"shoal join {shoal_server.url} --token {token}" in shown.stderr
    assert shoal(shoal_server, "token", "show").stdout.strip() == token  # stable until rotated

    accepted = join(shoal_server, token)
    assert accepted.status_code == 200 and accepted.json()["nodeName"] == "node-1"

    wrong = join(shoal_server, "SHOAL-1-not-the-token")
    assert wrong.status_code == 401
    assert "not this cluster's current worker token" in wrong.json()["message"]
    assert join(shoal_server, "garbage").status_code == 401
    bad_name = join(shoal_server, token, node="Bad_Name")
    assert bad_name.status_code == 422 and "nodeName" in bad_name.json()["message"]

    rotated = shoal(shoal_server, "token", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    fresh = rotated.stdout.strip()
    assert fresh != token
    assert join(shoal_server, token).status_code == 401
    assert join(shoal_server, fresh).status_code == 200
