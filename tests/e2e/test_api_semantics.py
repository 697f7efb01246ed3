"""The API's Kubernetes semantics: the real server (uvicorn, in the test's event loop) on a
real SQLite store, over a loopback socket. The kubectl and Python-client tests cover the
same server as a separate process. The semantics tests use the bare API; the last tests
here go through the whole stack ``shoal server`` runs (HTTPS, client certificates, RBAC).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shoal.client.kubeconfig import read as read_kubeconfig
from shoal.security.tls import client_context_from_pem
from shoal.server.resources import Resources
from shoal.server.run import api_server, listening
from shoal.store import Store, open_store
from tests.helpers import async_kube_http

CMS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


class Api:
    def __init__(self, http: httpx.AsyncClient, store: Store) -> None:
        self.http = http
        self.store = store

    async def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        ctype: str = "application/json",
        **params: str,
    ) -> httpx.Response:
        content = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        return await self.http.request(
            method, url, content=content, params=params, headers={"Content-Type": ctype}
        )

    async def ok(self, method: str, url: str, body: Any = None, **kw: Any) -> Any:
        response = await self.call(method, url, body, **kw)
        assert response.status_code < 300, response.text
        return response.json()

    async def refused(self, code: int, method: str, url: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        """The request fails with ``code`` and a Status, and nothing is written."""
        before = await self.store.current_revision()
        response = await self.call(method, url, body, **kw)
        assert response.status_code == code, response.text
        assert await self.store.current_revision() == before, "a refused request wrote to the store"
        status: dict[str, Any] = response.json()
        assert status["kind"] == "Status" and status["status"] == "Failure" and status["code"] == code
        return status


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = await open_store(f"sqlite:///{tmp_path / 'state.db'}")
    resources = Resources(store)
    await resources.bootstrap()
    async with listening(resources) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield Api(http, store)
    await store.close()


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name: str, replicas: int = 1, image: str = "busybox") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def pod(name: str, node: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


async def test_create_sets_the_fields_the_server_owns(api: Api) -> None:
    sent = config_map("a", k="v")
    sent["metadata"].update(
        uid="mine", generation=7, resourceVersion="99", creationTimestamp="2000-01-01T00:00:00Z"
    )
    obj = await api.ok("POST", CMS, sent)
    meta = obj["metadata"]
    assert meta["uid"] != "mine" and len(meta["uid"]) == 36
    assert meta["generation"] == 1 and meta["namespace"] == "default"
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["resourceVersion"] == str(await api.store.current_revision())
    assert await api.ok("GET", f"{CMS}/a") == obj


async def test_generate_name(api: Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "job-"}}
    names = {(await api.ok("POST", CMS, body))["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("job-") and len(n) == 9 for n in names)


@pytest.mark.parametrize(
    ("case", "code", "reason", "expect"),
    [
        ("malformed json", 400, "BadRequest", "not valid JSON"),
        ("kind does not match the URL", 422, "Invalid", "kind: Invalid value"),
        ("missing image", 422, "Invalid", "spec.template.spec.containers[0].image: Required value"),
        ("wrong type", 422, "Invalid", "spec.replicas: Invalid value"),
        ("invalid name", 422, "Invalid", 'metadata.name: Invalid value: "Bad_Name"'),
        ("no such namespace", 404, "NotFound", 'namespaces "nowhere" not found'),
        ("namespace differs from URL", 400, "BadRequest", "does not match the namespace"),
        ("unknown field, strict", 422, "Invalid", "spec.replicaz: Unknown field"),
        ("oversized body", 413, "RequestEntityTooLarge", "limit"),
        ("unknown resource", 404, "NotFound", "could not find the requested resource"),
    ],
)
async def test_bad_input_gets_a_specific_refusal_and_nothing_is_written(
    api: Api, case: str, code: int, reason: str, expect: str
) -> None:
    url, body, raw, params = DEPLOYS, deployment("d"), None, {}
    if case == "malformed json":
        raw = b'{"apiVersion": "apps/v1", "kind": '
    elif case == "kind does not match the URL":
        body["kind"] = "ReplicaSet"
    elif case == "missing image":
        del body["spec"]["template"]["spec"]["containers"][0]["image"]
    elif case == "wrong type":
        body["spec"]["replicas"] = "three"
    elif case == "invalid name":
        body["metadata"]["name"] = "Bad_Name"
    elif case == "no such namespace":
        url = "/apis/apps/v1/namespaces/nowhere/deployments"
    elif case == "namespace differs from URL":
        body["metadata"]["namespace"] = "kube-system"
    elif case == "unknown field, strict":
        body["spec"]["replicaz"] = 3
        params = {"fieldValidation": "Strict"}
    elif case == "oversized body":
        body["metadata"]["annotations"] = {"big": "x" * (3 * 1024 * 1024)}
    elif case == "unknown resource":
        url = "/apis/apps/v1/namespaces/default/widgets"
    status = await api.refused(code, "POST", url, body, raw=raw, **params)
    assert status["reason"] == reason
    assert expect in status["message"], status["message"]


async def test_invalid_status_names_every_field_with_causes(api: Api) -> None:
    body = deployment("d", replicas=-1)
    body["spec"]["template"]["spec"]["containers"].append({"name": "c"})
    status = await api.refused(422, "POST", DEPLOYS, body)
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {
        "spec.replicas",
        "spec.template.spec.containers[1].image",
        "spec.template.spec.containers[1].name",
    } <= fields
    assert status["details"]["kind"] == "Deployment" and status["details"]["group"] == "apps"


async def test_unknown_fields_warn_by_default_and_are_dropped(api: Api) -> None:
    body = config_map("w", k="v")
    body["extra"] = 1
    response = await api.call("POST", CMS, body)
    assert response.status_code == 201
    assert 'unknown field \\"extra\\"' in response.headers["warning"]
    assert "extra" not in response.json()


async def test_stale_resource_version_is_a_conflict(api: Api) -> None:
    first = await api.ok("POST", CMS, config_map("cas", v="1"))
    await api.ok("PUT", f"{CMS}/cas", {**first, "data": {"v": "2"}})
    status = await api.refused(409, "PUT", f"{CMS}/cas", {**first, "data": {"v": "3"}})
    assert status["reason"] == "Conflict" and "has been modified" in status["message"]
    assert (await api.ok("GET", f"{CMS}/cas"))["data"] == {"v": "2"}
    # Without a resourceVersion an update is unconditional, as in Kubernetes.
    unconditional = {**first, "metadata": {"name": "cas"}, "data": {"v": "4"}}
    assert (await api.ok("PUT", f"{CMS}/cas", unconditional))["data"] == {"v": "4"}


async def test_generation_counts_spec_changes_only(api: Api) -> None:
    obj = await api.ok("POST", DEPLOYS, deployment("g"))
    obj["metadata"]["labels"] = {"tier": "web"}
    obj = await api.ok("PUT", f"{DEPLOYS}/g", obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["replicas"] = 3
    obj = await api.ok("PUT", f"{DEPLOYS}/g", obj)
    assert obj["metadata"]["generation"] == 2


async def test_status_subresource_and_main_resource_own_their_halves(api: Api) -> None:
    obj = await api.ok("POST", DEPLOYS, deployment("s"))
    obj["status"] = {"replicas": 1, "readyReplicas": 1}
    obj["spec"]["replicas"] = 5
    after_status = await api.ok("PUT", f"{DEPLOYS}/s/status", obj)
    assert after_status["status"]["readyReplicas"] == 1 and after_status["spec"]["replicas"] == 1
    after_status["status"] = {"replicas": 99}
    after_main = await api.ok("PUT", f"{DEPLOYS}/s", after_status)
    assert after_main["status"]["readyReplicas"] == 1  # status is not the main resource's to change
    patched = await api.ok(
        "PATCH", f"{DEPLOYS}/s/status", {"status": {"replicas": 2}}, ctype="application/merge-patch+json"
    )
    assert patched["status"] == {"replicas": 2, "readyReplicas": 1}


async def test_status_given_at_create_is_reset(api: Api) -> None:
    body = deployment("r")
    body["status"] = {"readyReplicas": 10}
    obj = await api.ok("POST", DEPLOYS, body)
    assert "readyReplicas" not in obj.get("status", {})


async def test_scale_subresource(api: Api) -> None:
    await api.ok("POST", DEPLOYS, deployment("sc", replicas=2))
    scale = await api.ok("GET", f"{DEPLOYS}/sc/scale")
    assert (
        scale["kind"] == "Scale"
        and scale["spec"]["replicas"] == 2
        and scale["status"]["selector"] == "app=sc"
    )
    await api.ok(
        "PATCH", f"{DEPLOYS}/sc/scale", {"spec": {"replicas": 6}}, ctype="application/merge-patch+json"
    )
    assert (await api.ok("GET", f"{DEPLOYS}/sc"))["spec"]["replicas"] == 6
    status = await api.refused(422, "PUT", f"{DEPLOYS}/sc/scale", {**scale, "spec": {"replicas": -1}})
    assert "spec.replicas" in status["message"]
    await api.refused(404, "GET", f"{CMS}/x/scale")


async def test_three_patch_types(api: Api) -> None:
    await api.ok("POST", DEPLOYS, deployment("p"))
    url = f"{DEPLOYS}/p"
    merged = await api.ok(
        "PATCH", url, {"metadata": {"labels": {"a": "1"}}}, ctype="application/merge-patch+json"
    )
    assert merged["metadata"]["labels"] == {"a": "1"}
    jp = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    assert (await api.ok("PATCH", url, jp, ctype="application/json-patch+json"))["spec"]["replicas"] == 4
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}}}
    smp = await api.ok("PATCH", url, sidecar, ctype="application/strategic-merge-patch+json")
    assert sorted(c["name"] for c in smp["spec"]["template"]["spec"]["containers"]) == ["c", "side"]
    await api.refused(415, "PATCH", url, {"spec": {}}, ctype="text/plain")
    await api.refused(
        422,
        "PATCH",
        url,
        [{"op": "test", "path": "/spec/replicas", "value": 1}],
        ctype="application/json-patch+json",
    )
    # A patch that makes the object invalid is refused whole.
    await api.refused(422, "PATCH", url, {"spec": {"replicas": -3}}, ctype="application/merge-patch+json")


async def test_dry_run_writes_nothing(api: Api) -> None:
    before = await api.store.current_revision()
    obj = await api.ok("POST", CMS, config_map("dry"), dryRun="All")
    assert obj["metadata"]["name"] == "dry"
    assert await api.store.current_revision() == before
    await api.refused(404, "GET", f"{CMS}/dry")


async def test_label_and_field_selectors(api: Api) -> None:
    await api.ok("POST", PODS, pod("a", node="n1", labels={"app": "web", "tier": "front"}))
    await api.ok("POST", PODS, pod("b", node="n2", labels={"app": "web"}))
    await api.ok("POST", PODS, pod("c", labels={"app": "db"}))

    async def names(**params: str) -> list[str]:
        return [p["metadata"]["name"] for p in (await api.ok("GET", PODS, **params))["items"]]

    assert await names(labelSelector="app=web") == ["a", "b"]
    assert await names(labelSelector="app!=web") == ["c"]
    assert await names(labelSelector="app in (db,cache)") == ["c"]
    assert await names(labelSelector="app notin (db)") == ["a", "b"]
    assert await names(labelSelector="tier") == ["a"]
    assert await names(labelSelector="!tier") == ["b", "c"]
    assert await names(fieldSelector="spec.nodeName=n2") == ["b"]
    assert await names(fieldSelector="spec.nodeName=") == ["c"]
    assert await names(fieldSelector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    assert await names(fieldSelector="metadata.namespace=default", labelSelector="app=db") == ["c"]
    status = await api.refused(400, "GET", PODS, fieldSelector="spec.bogus=x")
    assert "spec.bogus" in status["message"]
    await api.refused(400, "GET", PODS, labelSelector="app in (web")


async def test_list_pages_with_limit_and_continue(api: Api) -> None:
    for i in range(7):
        await api.ok("POST", CMS, config_map(f"page-{i}"))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"limit": "3", **({"continue": token} if token else {})}
        page = await api.ok("GET", CMS, **params)
        seen += [c["metadata"]["name"] for c in page["items"]]
        pages += 1
        token = page["metadata"].get("continue", "")
        if not token:
            break
        await api.ok("POST", CMS, config_map(f"late-{pages}"))  # not in the snapshot being paged
    assert seen == [f"page-{i}" for i in range(7)] and pages == 3


async def watch_events(api: Api, url: str, count: int, **params: str) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    async with api.http.stream(
        "GET", url, params={"watch": "1", "timeoutSeconds": "10", **params}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            event = orjson.loads(line)
            obj = event["object"]
            events.append(
                (event["type"], obj["metadata"]["name"] if event["type"] != "ERROR" else obj["reason"])
            )
            if len(events) == count:
                break
    return events


async def test_watch_resumes_from_a_resource_version(api: Api) -> None:
    a = await api.ok("POST", CMS, config_map("a"))
    await api.ok("POST", CMS, config_map("b"))
    await api.ok("PATCH", f"{CMS}/a", {"data": {"x": "y"}}, ctype="application/merge-patch+json")
    await api.ok("DELETE", f"{CMS}/b")
    seen = await watch_events(api, CMS, 3, resourceVersion=a["metadata"]["resourceVersion"])
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_watch_without_version_starts_with_current_objects_then_follows(api: Api) -> None:
    await api.ok("POST", CMS, config_map("old"))
    async with api.http.stream("GET", CMS, params={"watch": "1", "timeoutSeconds": "10"}) as response:
        lines = response.aiter_lines()
        first = orjson.loads(await anext(lines))
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "old")
        await api.ok("POST", CMS, config_map("new"))  # after the stream opened: a live event
        second = orjson.loads(await anext(lines))
        assert (second["type"], second["object"]["metadata"]["name"]) == ("ADDED", "new")


async def test_watch_with_selector_sees_objects_enter_and_leave(api: Api) -> None:
    start = (await api.ok("GET", PODS))["metadata"]["resourceVersion"]
    await api.ok("POST", PODS, pod("p", labels={"app": "web"}))
    await api.ok(
        "PATCH", f"{PODS}/p", {"metadata": {"labels": {"app": "db"}}}, ctype="application/merge-patch+json"
    )
    await api.ok(
        "PATCH", f"{PODS}/p", {"metadata": {"labels": {"app": "web"}}}, ctype="application/merge-patch+json"
    )
    seen = await watch_events(api, PODS, 3, resourceVersion=start, labelSelector="app=web")
    assert seen == [("ADDED", "p"), ("DELETED", "p"), ("ADDED", "p")]


async def test_watch_from_a_compacted_version_is_expired(api: Api) -> None:
    first = await api.ok("POST", CMS, config_map("c1"))
    await api.ok("POST", CMS, config_map("c2"))
    await api.store.compact(await api.store.current_revision())
    seen = await watch_events(api, CMS, 1, resourceVersion=str(int(first["metadata"]["resourceVersion"]) - 1))
    assert seen == [("ERROR", "Expired")]
    status = await api.refused(410, "GET", CMS, resourceVersion="1", resourceVersionMatch="Exact")
    assert "too old" in status["message"]


async def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    body = config_map("f")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await api.ok("POST", CMS, body)
    held = await api.ok("DELETE", f"{CMS}/f")
    assert held["metadata"]["deletionTimestamp"]
    still = await api.ok("GET", f"{CMS}/f")
    assert still["metadata"]["deletionTimestamp"] == held["metadata"]["deletionTimestamp"]
    await api.ok(
        "PATCH", f"{CMS}/f", {"metadata": {"finalizers": None}}, ctype="application/merge-patch+json"
    )
    await api.refused(404, "GET", f"{CMS}/f")


async def test_delete_options(api: Api) -> None:
    obj = await api.ok("POST", CMS, config_map("d"))
    await api.refused(400, "DELETE", f"{CMS}/d", propagationPolicy="Sideways")
    await api.refused(409, "DELETE", f"{CMS}/d", {"preconditions": {"uid": "other"}})
    done = await api.ok(
        "DELETE",
        f"{CMS}/d",
        {"propagationPolicy": "Background", "preconditions": {"uid": obj["metadata"]["uid"]}},
    )
    assert done["status"] == "Success" and done["details"]["name"] == "d"
    await api.refused(404, "DELETE", f"{CMS}/d")


@pytest.mark.parametrize(
    ("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")]
)
async def test_foreground_and_orphan_deletes_wait_for_the_garbage_collector(
    api: Api, policy: str, finalizer: str
) -> None:
    await api.ok("POST", DEPLOYS, deployment("owner"))
    held = await api.ok("DELETE", f"{DEPLOYS}/owner", propagationPolicy=policy)
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == [finalizer]
    # The collector removes the finalizer once it has dealt with the dependents; then it is gone.
    await api.ok(
        "PATCH", f"{DEPLOYS}/owner", {"metadata": {"finalizers": []}}, ctype="application/merge-patch+json"
    )
    await api.refused(404, "GET", f"{DEPLOYS}/owner")


async def test_namespaces(api: Api) -> None:
    names = [n["metadata"]["name"] for n in (await api.ok("GET", "/api/v1/namespaces"))["items"]]
    assert {"default", "kube-system"} <= set(names)
    await api.refused(403, "DELETE", "/api/v1/namespaces/default")
    await api.ok(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}
    )
    await api.ok("POST", "/api/v1/namespaces/tmp/configmaps", config_map("inside"))
    await api.ok("DELETE", "/api/v1/namespaces/tmp")
    await api.refused(404, "GET", "/api/v1/namespaces/tmp")
    await api.refused(404, "GET", "/api/v1/namespaces/tmp/configmaps/inside")
    status = await api.refused(
        422,
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}},
    )
    assert "metadata.name" in status["message"]


async def test_discovery_and_health(api: Api) -> None:
    assert (await api.http.get("/healthz")).text == "ok"
    assert (await api.ok("GET", "/version"))["major"] == "1"
    assert (await api.ok("GET", "/api"))["versions"] == ["v1"]
    groups = {g["name"] for g in (await api.ok("GET", "/apis"))["groups"]}
    assert groups == {"apps", "batch", "coordination.k8s.io", "metrics.k8s.io", "rbac.authorization.k8s.io"}
    core = {r["name"]: r for r in (await api.ok("GET", "/api/v1"))["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert "pods/status" in core and core["nodes"]["namespaced"] is False
    apps = {r["name"] for r in (await api.ok("GET", "/apis/apps/v1"))["resources"]}
    assert {"deployments", "deployments/scale", "replicasets", "daemonsets"} <= apps
    await api.refused(404, "GET", "/apis/nope/v1")
    index = await api.ok("GET", "/openapi/v3")
    assert "apis/apps/v1" in index["paths"]


async def test_table_output_uses_the_kind_columns(api: Api) -> None:
    await api.ok("POST", DEPLOYS, deployment("t", replicas=3))
    response = await api.http.get(DEPLOYS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = response.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert table["rows"][0]["cells"][:2] == ["t", "0/3"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_yaml_bodies_are_read_as_json_would_be(api: Api) -> None:
    # Found by the fuzz test: YAML escapes can spell an unpaired surrogate, which no JSON carries.
    bad = b'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y, labels: {"\\ud800\\udc00": "x"}}\n'
    status = await api.refused(400, "POST", CMS, raw=bad, ctype="application/yaml")
    assert "cannot be represented as JSON" in status["message"]
    good = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: {when: 2024-01-01}\n"
    obj = await api.ok("POST", CMS, raw=good, ctype="application/yaml")
    assert obj["data"] == {"when": "2024-01-01"}


async def test_binding_assigns_a_pod_once(api: Api) -> None:
    await api.ok("POST", PODS, pod("b1"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "b1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    }
    status = await api.ok("POST", f"{PODS}/b1/binding", binding)
    assert status["status"] == "Success"
    assert (await api.ok("GET", f"{PODS}/b1"))["spec"]["nodeName"] == "node-1"
    again = await api.refused(409, "POST", f"{PODS}/b1/binding", {**binding, "target": {"name": "node-2"}})
    assert "already assigned to node 'node-1'" in again["message"]
    missing = await api.refused(422, "POST", f"{PODS}/b1/binding", {"target": {}})
    assert "target.name: Required value" in missing["message"]
    await api.refused(404, "POST", f"{CMS}/x/binding", binding)
    # Through a pod update, nodeName stays the scheduler's to set.
    current = await api.ok("GET", f"{PODS}/b1")
    current["spec"]["nodeName"] = "node-3"
    await api.refused(422, "PUT", f"{PODS}/b1", current)


# --------------------------------------------------------------------------- the secured stack


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Path]:
    """The server as ``shoal server`` runs it: HTTPS, authentication and RBAC; its kubeconfig
    (the cluster CA and the admin's client certificate)."""
    data_dir = tmp_path / "data"
    async with api_server(data_dir, "127.0.0.1:0"):
        yield data_dir / "kubeconfig"


def anonymous_http(kubeconfig: Path) -> httpx.AsyncClient:
    """A client that trusts the cluster CA but shows no client certificate."""
    connection = read_kubeconfig(kubeconfig)
    ca = client_context_from_pem(connection.credentials.ca_pem)
    return httpx.AsyncClient(base_url=connection.server, verify=ca, timeout=10)


async def test_https_with_the_admin_certificate(secured: Path) -> None:
    assert read_kubeconfig(secured).server.startswith("https://127.0.0.1:")
    async with async_kube_http(secured) as http:
        created = await http.post(CMS, json=config_map("c", a="1"))
        assert created.status_code == 201, created.text
        listed = await http.get(CMS)
        assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["c"]


async def test_a_request_without_a_certificate_is_forbidden(secured: Path) -> None:
    async with anonymous_http(secured) as http:
        response = await http.get(CMS)
        assert response.status_code == 403, response.text
        status = response.json()
        assert status["kind"] == "Status" and status["reason"] == "Forbidden" and status["code"] == 403
        assert status["message"] == (
            'configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" '
            'in API group "" in the namespace "default"'
        )
        write = await http.post(CMS, json=config_map("sneaky"))
        assert write.status_code == 403 and '"system:anonymous" cannot create' in write.json()["message"]
    async with async_kube_http(secured) as admin:
        assert (await admin.get(CMS)).json()["items"] == []  # the refused write wrote nothing


async def test_health_and_version_stay_open(secured: Path) -> None:
    async with anonymous_http(secured) as http:
        for path in ("/healthz", "/livez", "/readyz"):
            response = await http.get(path)
            assert response.status_code == 200 and response.text == "ok", (path, response.text)
        assert (await http.get("/version")).json()["major"] == "1"


async def test_plain_http_is_not_served(secured: Path) -> None:
    plain = read_kubeconfig(secured).server.replace("https://", "http://", 1)
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.RemoteProtocolError):  # the TLS server hangs up
            await http.get(f"{plain}/healthz")
