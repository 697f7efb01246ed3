"""Thousands of mutated requests: the server never answers 5xx, and a refused request
writes nothing (the store's revision does not move)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.server.app import create_app
from shoal.server.resources import Resources
from shoal.store import Store, open_store

SEEDS: list[tuple[str, dict[str, Any]]] = [
    (
        "/api/v1/namespaces/default/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"a": "b"}},
            "data": {"k": "v"},
        },
    ),
    (
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"memory": "64Mi"}},
                    }
                ]
            },
        },
    ),
    (
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    ),
    (
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"selector": {"app": "d"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ),
    ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
    (
        "/apis/batch/v1/namespaces/default/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
                }
            },
        },
    ),
]

WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.just(""),
    st.just("-Invalid_Name-"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes, str]:
    url, seed = draw(st.sampled_from(SEEDS))
    body: Any = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        targets = [p for p in paths(body) if p]
        if not targets:
            break
        where = draw(st.sampled_from(targets))
        parent = body
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(WEIRD)
        else:
            parent[where[-1]] = draw(WEIRD)
    method = draw(st.sampled_from(["POST", "POST", "PUT", "PATCH", "GET", "DELETE"]))
    name = (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else None
    name = quote(name, safe="") if isinstance(name, str) and name else "x"
    target = url if method == "POST" else f"{url}/{name}"
    target += draw(st.sampled_from(["", "", "/status", "/scale", "/bogus"]))
    params = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "labelSelector",
                    "fieldSelector",
                    "resourceVersion",
                    "dryRun",
                    "fieldValidation",
                    "limit",
                    "continue",
                    "propagationPolicy",
                    "watch",
                    "timeoutSeconds",
                ]
            ),
            st.one_of(
                st.text(max_size=12), st.sampled_from(["All", "Strict", "a=b", "a in (", "!x", "-1", "0"])
            ),
            max_size=2,
        )
    )
    if method == "GET":
        params.pop("watch", None)  # a watch streams until timeout; covered by its own tests
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/json-patch+json",
                "application/yaml",
                "text/plain",
                "application/apply-patch+yaml",
            ]
        )
    )
    raw = json.dumps(body).encode() if draw(st.booleans()) else draw(st.binary(max_size=64))
    if content_type == "application/json-patch+json" and draw(st.booleans()):
        raw = json.dumps(
            [
                {
                    "op": draw(st.sampled_from(["add", "remove", "replace", "test", "move", "x"])),
                    "path": draw(st.sampled_from(["/spec", "/metadata/name", "/data/k", "", "/a/b/c"])),
                    "value": draw(WEIRD),
                }
            ]
        ).encode()
    return method, target, params, raw, content_type


class Harness:
    """The real app on a real SQLite store, driven in-process through httpx's ASGI transport."""

    def __init__(self, tmp: Path) -> None:
        self.runner = asyncio.Runner()
        self.store: Store = self.runner.run(open_store(f"sqlite:///{tmp / 'state.db'}"))
        resources = Resources(self.store)
        self.runner.run(resources.bootstrap())
        transport = httpx.ASGITransport(app=create_app(resources))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://shoal")
        for url, seed in SEEDS:  # one valid object of each kind, so updates have targets
            self.runner.run(self.http.post(url, content=orjson.dumps(seed)))

    def request(
        self, method: str, url: str, params: dict[str, str], body: bytes, ctype: str
    ) -> tuple[int, int]:
        async def go() -> tuple[int, int]:
            before = await self.store.current_revision()
            response = await self.http.request(
                method, url, params=params, content=body, headers={"Content-Type": ctype}
            )
            after = await self.store.current_revision()
            assert response.status_code < 500, (
                f"{method} {url} {params} -> {response.status_code} {response.text}"
            )
            if response.status_code >= 400:
                status = response.json()
                assert status["kind"] == "Status" and status["message"], response.text
                assert after == before, f"refused {method} {url} ({response.status_code}) still wrote"
            return response.status_code, after - before

        return self.runner.run(go())

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.run(self.store.close())
        self.runner.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    yield h
    h.close()


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(request=mutated())
def test_no_5xx_and_no_partial_write(
    harness: Harness, request: tuple[str, str, dict[str, str], bytes, str]
) -> None:
    harness.request(*request)


def test_oversized_body_is_413_and_writes_nothing(harness: Harness) -> None:
    big = orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"k": "x" * (3 * 1024 * 1024 + 1)},
        }
    )
    code, written = harness.request(
        "POST", "/api/v1/namespaces/default/configmaps", {}, big, "application/json"
    )
    assert (code, written) == (413, 0)
