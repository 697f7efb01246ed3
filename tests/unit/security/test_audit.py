"""The audit log: one JSON line per mutating request, none for reads, rotated by size, and a
middleware that streams (it never holds a response back)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.security.audit import ANONYMOUS, USER_SCOPE_KEY, AuditLog, AuditMiddleware, describe
from shoal.server.app import create_app
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore

RFC3339_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    audit = AuditLog(tmp_path / "audit.log")
    app = AuditMiddleware(create_app(resources), audit)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4567))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, tmp_path / "audit.log"
    audit.close()


async def test_mutating_requests_are_recorded_reads_are_not(api: tuple[httpx.AsyncClient, Path]) -> None:
    client, path = api
    cms = "/api/v1/namespaces/default/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    assert (await client.post(cms, json=body)).status_code == 201
    generated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "g-"}}
    created = (await client.post(cms, json=generated)).json()["metadata"]["name"]
    assert (await client.post(cms, json=body)).status_code == 409
    current = (await client.get(f"{cms}/a")).json()
    await client.get(cms)
    await client.get(
        f"{cms}?watch=1&timeoutSeconds=1&resourceVersion={current['metadata']['resourceVersion']}"
    )
    await client.get("/api/v1/namespaces/default/configmaps/missing")
    assert (await client.put(f"{cms}/a", json=current)).status_code == 200
    patch = {"data": {"k": "w"}}
    headers = {"Content-Type": "application/merge-patch+json", "X-Request-Id": "req-42"}
    assert (await client.patch(f"{cms}/a", json=patch, headers=headers)).status_code == 200
    response = await client.delete(f"{cms}/a")
    assert response.status_code == 200 and response.headers["audit-id"]
    assert (await client.delete(cms)).status_code == 200
    assert (await client.post("/shoal/v1/unlock", json={"unlockKey": "SHOALKEY-1-x"})).status_code == 404
    deployments = "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert (await client.put(deployments, json={"spec": {"replicas": 2}})).status_code == 404

    records = lines(path)
    summary = [(r["verb"], r["resource"], r["namespace"], r["name"], r["code"]) for r in records]
    assert summary == [
        ("create", "/configmaps", "default", "a", 201),
        ("create", "/configmaps", "default", created, 201),
        ("create", "/configmaps", "default", "", 409),
        ("update", "/configmaps", "default", "a", 200),
        ("patch", "/configmaps", "default", "a", 200),
        ("delete", "/configmaps", "default", "a", 200),
        ("deletecollection", "/configmaps", "default", "", 200),
        ("create", "shoal.io/unlock", "", "", 404),
        ("update", "apps/deployments/scale", "default", "web", 404),
    ]
    for record in records:
        assert RFC3339_MICRO.match(record["time"])
        assert record["user"] == ANONYMOUS
        assert record["sourceIP"] == "10.1.2.3"
        assert record["requestID"]
    assert records[4]["requestID"] == "req-42"
    assert records[5]["requestID"] == response.headers["audit-id"]
    assert records[0]["uri"] == cms
    assert len({r["requestID"] for r in records}) == len(records)


def test_describe_names_verbs_resources_and_subresources() -> None:
    assert describe("GET", "/api/v1/pods") is None
    assert describe("GET", "/api/v1/watch/namespaces/x/pods") is None
    assert describe("GET", "/healthz") is None
    assert describe("POST", "/api/v1/namespaces/x/pods/p/binding") == {
        "verb": "create",
        "group": "",
        "resource": "pods",
        "subresource": "binding",
        "namespace": "x",
        "name": "p",
    }
    exec_get = describe("GET", "/api/v1/namespaces/x/pods/p/exec")
    assert exec_get is not None and exec_get["verb"] == "create" and exec_get["subresource"] == "exec"
    status = describe("PUT", "/apis/apps/v1/namespaces/x/deployments/d/status")
    assert status is not None and (status["verb"], status["group"], status["subresource"]) == (
        "update",
        "apps",
        "status",
    )
    node = describe("DELETE", "/api/v1/nodes/n1")
    assert node is not None and (node["verb"], node["namespace"], node["name"]) == ("delete", "", "n1")
    ns = describe("DELETE", "/api/v1/namespaces/team")
    assert ns is not None and (ns["resource"], ns["name"]) == ("namespaces", "team")
    unlock = describe("POST", "/shoal/v1/unlock")
    assert unlock is not None and (unlock["group"], unlock["resource"], unlock["name"]) == (
        "shoal.io",
        "unlock",
        "",
    )


async def test_the_user_comes_from_the_scope_when_an_authenticator_set_it(tmp_path: Path) -> None:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    audit = AuditLog(tmp_path / "audit.log")
    inner = AuditMiddleware(create_app(resources), audit)

    @dataclass(frozen=True)
    class UserInfo:
        name: str
        groups: tuple[str, ...] = ()

    async def authenticated(scope: Any, receive: Any, send: Any) -> None:
        await inner({**scope, USER_SCOPE_KEY: "jane"}, receive, send)

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        scope[USER_SCOPE_KEY] = UserInfo("john", ("dev",))  # set in the shared scope, inside
        await create_app(resources)(scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=authenticated), base_url="http://t") as c:
        await c.delete("/api/v1/namespaces/default/configmaps/nothing")
    outer = AuditMiddleware(guarded, audit)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://t") as c:
        await c.delete("/api/v1/namespaces/default/configmaps/nothing")
    audit.close()
    first, second = lines(tmp_path / "audit.log")
    assert first["user"] == "jane" and first["code"] == 404 and "groups" not in first
    assert (second["user"], second["groups"]) == ("john", ["dev"])


def test_the_log_rotates_by_size_and_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = AuditLog(path, max_bytes=1000, backups=2)
    for i in range(100):
        audit.write({"n": i, "pad": "x" * 80})
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
    numbers = [r["n"] for name in ("audit.log.2", "audit.log.1", "audit.log") for r in lines(tmp_path / name)]
    assert numbers == list(range(numbers[0], 100))  # the newest lines, in order, none torn
    # Reopened, it appends and keeps counting the size it already has.
    again = AuditLog(path, max_bytes=1000, backups=2)
    again.write({"n": 100})
    again.close()
    assert lines(path)[-1] == {"n": 100}


async def test_the_middleware_streams_responses_it_records(tmp_path: Path) -> None:
    """A mutating request whose answer streams (as an exec or a long POST could) is passed on
    chunk by chunk; the line is written when it ends, with the status of its start."""
    release = asyncio.Event()

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"last", "more_body": False})

    audit = AuditLog(tmp_path / "audit.log")
    app = AuditMiddleware(streaming, audit)
    sent: list[Any] = []
    got_first = asyncio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        if message.get("body") == b"first":
            got_first.set()

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/api/v1/namespaces/d/pods/p/exec", "headers": []}
    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(got_first.wait(), 5)
    assert not (tmp_path / "audit.log").exists() or not lines(tmp_path / "audit.log")
    release.set()
    await task
    audit.close()
    (record,) = lines(tmp_path / "audit.log")
    assert (record["verb"], record["resource"], record["code"]) == ("create", "/pods/exec", 200)
