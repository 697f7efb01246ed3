"""The Node authorizer: a node reads and updates what is bound to it, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.security.identity import RequestAttributes, UserInfo
from shoal.security.nodeauthz import NodeAuthorizer, referenced
from shoal.security.rbac import forbidden_message

NODE1 = UserInfo("node-1", ("shoal:nodes", "system:authenticated"))
NODE2 = UserInfo("node-2", ("shoal:nodes", "system:authenticated"))


def pod(name: str, node: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node, **spec}}


PODS = [
    pod(
        "web",
        "node-1",
        volumes=[
            {"name": "v", "secret": {"secretName": "tls"}},
            {"name": "c", "configMap": {"name": "conf"}},
            {
                "name": "p",
                "projected": {"sources": [{"secret": {"name": "proj-s"}}, {"configMap": {"name": "proj-c"}}]},
            },
        ],
        containers=[
            {
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-c", "key": "k"}}},
                ],
                "envFrom": [{"secretRef": {"name": "from-s"}}, {"configMapRef": {"name": "from-c"}}],
            }
        ],
        initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-s"}}]}],
    ),
    pod("db", "node-2", volumes=[{"name": "v", "secret": {"secretName": "db"}}]),
]
AUTHZ = NodeAuthorizer(lambda node: [p for p in PODS if p["spec"]["nodeName"] == node])


def req(user: UserInfo, verb: str, resource: str, **kw: Any) -> RequestAttributes:
    return RequestAttributes(user, verb, resource=resource, **kw)


def allowed(attrs: RequestAttributes) -> bool:
    decision = AUTHZ.authorize(attrs)
    assert decision is not None
    return decision.allowed


def test_referenced_finds_every_kind_of_reference() -> None:
    secrets, config_maps = referenced(PODS[0])
    assert secrets == {"tls", "proj-s", "env-s", "from-s", "init-s"}
    assert config_maps == {"conf", "proj-c", "env-c", "from-c"}


@pytest.mark.parametrize("name", ["tls", "proj-s", "env-s", "from-s", "init-s"])
def test_own_pods_secrets_are_readable(name: str) -> None:
    assert allowed(req(NODE1, "get", "secrets", namespace="default", name=name))
    assert allowed(req(NODE1, "watch", "secrets", namespace="default", name=name))  # one, by name
    assert not allowed(req(NODE1, "update", "secrets", namespace="default", name=name))


@pytest.mark.parametrize("name", ["conf", "proj-c", "env-c", "from-c"])
def test_own_pods_config_maps_are_readable(name: str) -> None:
    assert allowed(req(NODE1, "get", "configmaps", namespace="default", name=name))


def test_another_nodes_secret_is_refused_with_a_reason_naming_the_node() -> None:
    attrs = req(NODE1, "get", "secrets", namespace="default", name="db")
    decision = AUTHZ.authorize(attrs)
    assert decision is not None and not decision.allowed
    assert decision.reason == 'no relationship found between node "node-1" and this object'
    assert forbidden_message(attrs, decision.reason) == (
        'secrets "db" is forbidden: User "node-1" cannot get resource "secrets" in API group "" '
        'in the namespace "default": no relationship found between node "node-1" and this object'
    )
    assert allowed(req(NODE2, "get", "secrets", namespace="default", name="db"))


def test_same_name_in_another_namespace_is_refused() -> None:
    assert not allowed(req(NODE1, "get", "secrets", namespace="other", name="tls"))


def test_secrets_cannot_be_listed() -> None:
    decision = AUTHZ.authorize(req(NODE1, "list", "secrets", namespace="default"))
    assert decision is not None and decision.reason == "No Object name found"
    assert not allowed(req(NODE1, "list", "secrets"))


def test_own_pods_only() -> None:
    assert allowed(req(NODE1, "get", "pods", namespace="default", name="web"))
    assert allowed(req(NODE1, "delete", "pods", namespace="default", name="web"))
    assert allowed(req(NODE1, "patch", "pods", subresource="status", namespace="default", name="web"))
    assert allowed(req(NODE1, "update", "pods", subresource="status", namespace="default", name="web"))
    assert not allowed(req(NODE1, "get", "pods", namespace="default", name="db"))
    assert not allowed(req(NODE1, "patch", "pods", subresource="status", namespace="default", name="db"))
    assert not allowed(req(NODE1, "update", "pods", namespace="default", name="web"))  # the spec
    assert not allowed(req(NODE1, "create", "pods", namespace="default", name="x"))
    assert not allowed(req(NODE1, "get", "pods", subresource="log", namespace="default", name="web"))
    assert not allowed(req(NODE1, "create", "pods", subresource="exec", namespace="default", name="web"))


def test_pods_list_and_watch_need_the_node_field_selector() -> None:
    assert allowed(req(NODE1, "watch", "pods", field_selector="spec.nodeName=node-1"))
    assert allowed(req(NODE1, "list", "pods", field_selector="spec.nodeName=node-1"))
    assert not allowed(req(NODE1, "list", "pods", field_selector="spec.nodeName=node-2"))
    assert not allowed(req(NODE1, "list", "pods"))


def test_own_node_and_its_status() -> None:
    for verb in ("get", "create", "update", "patch"):
        assert allowed(req(NODE1, verb, "nodes", name="node-1"))
        assert not allowed(req(NODE1, verb, "nodes", name="node-2"))
    assert allowed(req(NODE1, "patch", "nodes", subresource="status", name="node-1"))
    assert not allowed(req(NODE1, "patch", "nodes", subresource="status", name="node-2"))
    assert allowed(req(NODE1, "watch", "nodes"))
    assert not allowed(req(NODE1, "delete", "nodes", name="node-1"))


def test_own_lease_only() -> None:
    lease = {"api_group": "coordination.k8s.io", "namespace": "kube-node-lease"}
    for verb in ("get", "create", "update", "patch"):
        assert allowed(req(NODE1, verb, "leases", name="node-1", **lease))
    assert not allowed(req(NODE1, "update", "leases", name="node-2", **lease))
    assert not allowed(req(NODE1, "delete", "leases", name="node-1", **lease))
    shoal_leader = {"api_group": "coordination.k8s.io", "namespace": "kube-system"}
    assert not allowed(req(NODE1, "update", "leases", name="node-1", **shoal_leader))


def test_events_may_be_created() -> None:
    assert allowed(req(NODE1, "create", "events", namespace="default"))
    assert allowed(req(NODE1, "patch", "events", namespace="default", name="e"))
    assert not allowed(req(NODE1, "list", "events", namespace="default"))


def test_anything_else_is_refused() -> None:
    for attrs in (
        req(NODE1, "list", "deployments", api_group="apps", namespace="default"),
        req(NODE1, "get", "roles", api_group="rbac.authorization.k8s.io", namespace="default", name="r"),
        req(NODE1, "list", "namespaces"),
        RequestAttributes(NODE1, "get", path="/metrics"),
    ):
        decision = AUTHZ.authorize(attrs)
        assert decision is not None and not decision.allowed and '"node-1"' in decision.reason
    assert allowed(RequestAttributes(NODE1, "get", path="/version"))


def test_users_that_are_not_nodes_get_no_opinion() -> None:
    assert AUTHZ.authorize(req(UserInfo("node-1"), "get", "secrets", namespace="default", name="tls")) is None
