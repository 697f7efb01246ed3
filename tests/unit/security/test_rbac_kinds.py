"""The RBAC kinds: validation and defaults as Kubernetes', columns, and the default roles
written through the in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shoal.api.admission import admit
from shoal.api.kinds.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING
from shoal.client.local import LocalClient
from shoal.security.default_roles import DEFAULT_CLUSTER_ROLE_BINDINGS, DEFAULT_CLUSTER_ROLES, bootstrap_roles
from shoal.security.identity import UserInfo
from shoal.security.rbac import PolicySnapshot, RBACAuthorizer, RequestAttributes
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore


def errors(kind: Any, obj: dict[str, Any]) -> list[str]:
    _, errs, _ = admit(kind, obj)
    return [str(e) for e in errs]


def role(rules: list[dict[str, Any]], namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": "system:r", "namespace": namespace}, "rules": rules}


def test_role_rules_are_validated() -> None:
    assert errors(ROLE, role([{"apiGroups": [""], "resources": ["pods"], "verbs": []}])) == [
        "rules[0].verbs: Required value: verbs must contain at least one value"
    ]
    assert errors(ROLE, role([{"verbs": ["get"]}])) == [
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[0].resources: Required value: resource rules must supply at least one resource",
    ]
    assert errors(ROLE, role([{"nonResourceURLs": ["/x"], "verbs": ["get"]}])) == [
        "rules[0].nonResourceURLs: Invalid value: ['/x']: namespaced rules cannot apply to non-resource URLs"
    ]
    mixed = {
        "metadata": {"name": "c"},
        "rules": [{"nonResourceURLs": ["/x"], "resources": ["pods"], "verbs": ["get"]}],
    }
    assert errors(CLUSTER_ROLE, mixed) == [
        "rules[0].nonResourceURLs: Invalid value: ['/x']: rules cannot apply to both regular resources and "
        "non-resource URLs"
    ]
    assert errors(ROLE, {**role([]), "metadata": {"name": "a/b", "namespace": "d"}}) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]


def test_aggregation_rule_needs_a_selector() -> None:
    obj = {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": []}}
    assert errors(CLUSTER_ROLE, obj) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"
    ]


def binding(
    ref: dict[str, Any], subjects: list[dict[str, Any]], namespace: str = "default"
) -> dict[str, Any]:
    meta = {"name": "b", **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "roleRef": ref, "subjects": subjects}


def test_binding_defaults_and_validation() -> None:
    obj, errs, _ = admit(
        ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [{"kind": "User", "name": "u"}])
    )
    assert errs == []
    assert obj["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert obj["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert errors(ROLE_BINDING, binding({"kind": "Pod", "name": "r"}, [])) == [
        'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"'
    ]
    assert errors(CLUSTER_ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [], namespace="")) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'
    ]
    assert errors(ROLE_BINDING, binding({"apiGroup": "x", "kind": "Role", "name": ""}, [])) == [
        'roleRef.apiGroup: Unsupported value: "x": supported values: "rbac.authorization.k8s.io"',
        "roleRef.name: Required value",
    ]
    assert errors(ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [{"kind": "Robot", "name": "x"}])) == [
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"'
    ]
    sa = {"kind": "ServiceAccount", "name": "bot"}
    assert errors(ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [sa])) == []
    assert errors(
        CLUSTER_ROLE_BINDING, binding({"kind": "ClusterRole", "name": "r"}, [sa], namespace="")
    ) == ["subjects[0].namespace: Required value"]
    assert errors(ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [{**sa, "apiGroup": "x"}])) == [
        'subjects[0].apiGroup: Unsupported value: "x": supported values: ""'
    ]
    assert errors(ROLE_BINDING, binding({"kind": "Role", "name": "r"}, [{"kind": "User", "name": ""}])) == [
        "subjects[0].name: Required value"
    ]


def test_role_ref_is_immutable() -> None:
    old, _, _ = admit(ROLE_BINDING, binding({"kind": "Role", "name": "r"}, []))
    new, _, _ = admit(ROLE_BINDING, binding({"kind": "ClusterRole", "name": "r"}, []))
    assert ROLE_BINDING.validate_update is not None
    (error,) = ROLE_BINDING.validate_update(new, old)
    assert (error.path, error.detail) == ("roleRef", "cannot change roleRef")
    assert ROLE_BINDING.validate_update(old, old) == []


def test_binding_columns() -> None:
    obj, _, _ = admit(
        CLUSTER_ROLE_BINDING,
        binding(
            {"kind": "ClusterRole", "name": "view"},
            [
                {"kind": "User", "name": "u"},
                {"kind": "Group", "name": "g"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
            ],
            namespace="",
        ),
    )
    cells = {c.name: c.value(obj) for c in CLUSTER_ROLE_BINDING.columns if c.name != "Age"}
    assert cells == {
        "Name": "b",
        "Role": "ClusterRole/view",
        "Users": "u",
        "Groups": "g",
        "ServiceAccounts": "ns/sa",
    }


def test_default_roles_are_valid() -> None:
    for obj in DEFAULT_CLUSTER_ROLES:
        assert errors(CLUSTER_ROLE, obj) == [], obj["metadata"]["name"]
    for obj in DEFAULT_CLUSTER_ROLE_BINDINGS:
        assert errors(CLUSTER_ROLE_BINDING, obj) == []


@pytest.fixture
async def client() -> AsyncIterator[LocalClient]:
    store = MemoryStore()
    resources = Resources(store)
    await resources.bootstrap()
    yield LocalClient(resources)
    await store.close()


async def test_bootstrap_roles_is_idempotent_and_repairs(client: LocalClient) -> None:
    first = await bootstrap_roles(client)
    assert len(first) == len(DEFAULT_CLUSTER_ROLES) + len(DEFAULT_CLUSTER_ROLE_BINDINGS)
    assert await bootstrap_roles(client) == []
    view = await client.get(CLUSTER_ROLE, "system:aggregate-to-view")
    await client.update(CLUSTER_ROLE, {**view, "rules": []})
    assert await bootstrap_roles(client) == ["system:aggregate-to-view"]
    roles = (await client.list(CLUSTER_ROLE))["items"]
    bindings = (await client.list(CLUSTER_ROLE_BINDING))["items"]
    authz = RBACAuthorizer.of(PolicySnapshot(cluster_roles=roles, cluster_role_bindings=bindings))
    discovery = RequestAttributes(UserInfo("u", ("system:authenticated",)), "get", path="/apis")
    assert authz.authorize(discovery).allowed
