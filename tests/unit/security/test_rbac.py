"""The RBAC authorizer's rule features, binding scopes, aggregation and messages."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.security.identity import RequestAttributes, UserInfo
from shoal.security.rbac import PolicySnapshot, RBACAuthorizer, aggregate_cluster_roles, forbidden_status
from shoal.security.rules import Rule

JOHN = UserInfo("john", ("devs", "system:authenticated"))


def role(name: str, rules: list[dict[str, Any]], namespace: str = "", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    meta.update(extra.pop("metadata", {}))
    return {"metadata": meta, "rules": rules, **extra}


def binding(
    name: str, kind: str, role_name: str, subjects: list[dict[str, Any]], namespace: str = ""
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "roleRef": {"kind": kind, "name": role_name}, "subjects": subjects}


USER = [{"kind": "User", "name": "john"}]


def attrs(verb: str, resource: str = "", **kw: Any) -> RequestAttributes:
    return RequestAttributes(kw.pop("user", JOHN), verb, resource=resource, **kw)


def with_cluster_rule(rule: dict[str, Any]) -> RBACAuthorizer:
    return RBACAuthorizer.of(
        PolicySnapshot(
            cluster_roles=[role("r", [rule])],
            cluster_role_bindings=[binding("b", "ClusterRole", "r", USER)],
        )
    )


def rule(verbs: str, resources: str, groups: str = "", names: str = "") -> dict[str, Any]:
    """A PolicyRule from space-separated lists ("-" is the core group "")."""
    out: dict[str, Any] = {"verbs": verbs.split(), "resources": resources.split()}
    out["apiGroups"] = ["" if g == "-" else g for g in (groups or "-").split()]
    if names:
        out["resourceNames"] = names.split()
    return out


def urls(verbs: str, paths: str) -> dict[str, Any]:
    return {"verbs": verbs.split(), "nonResourceURLs": paths.split()}


@pytest.mark.parametrize(
    ("rule_", "request_", "allowed"),
    [
        (rule("get", "pods"), attrs("get", "pods", namespace="a"), True),
        (rule("get", "pods"), attrs("list", "pods", namespace="a"), False),
        (rule("*", "pods"), attrs("delete", "pods", namespace="a"), True),
        (rule("get", "pods", "apps"), attrs("get", "pods"), False),
        (rule("get", "deployments", "*"), attrs("get", "deployments", api_group="apps"), True),
        (rule("get", "*"), attrs("get", "secrets"), True),
        # "*" covers subresources; a plain resource does not.
        (rule("get", "*"), attrs("get", "pods", subresource="log"), True),
        (rule("get", "pods"), attrs("get", "pods", subresource="log"), False),
        (rule("get", "pods/log"), attrs("get", "pods", subresource="log"), True),
        (rule("get", "pods/log"), attrs("get", "pods"), False),
        (rule("get", "*/status"), attrs("get", "pods", subresource="status"), True),
        (rule("get", "*/status"), attrs("get", "pods", subresource="log"), False),
        (rule("update", "deployments/scale", "apps"),
         attrs("update", "deployments", api_group="apps", subresource="scale"), True),
        (rule("create", "pods/exec"), attrs("create", "pods", subresource="exec"), True),
        # resourceNames: only those names; never a request without a name (list).
        (rule("get list", "configmaps", names="a"), attrs("get", "configmaps", name="a"), True),
        (rule("get list", "configmaps", names="a"), attrs("get", "configmaps", name="b"), False),
        (rule("get list", "configmaps", names="a"), attrs("list", "configmaps"), False),
        # non-resource URLs
        (urls("get", "/healthz"), attrs("get", path="/healthz"), True),
        (urls("get", "/healthz"), attrs("post", path="/healthz"), False),
        (urls("get", "/openapi/*"), attrs("get", path="/openapi/v3/apis/apps/v1"), True),
        (urls("get", "/openapi/*"), attrs("get", path="/openapi"), False),
        (urls("*", "*"), attrs("get", path="/version"), True),
        # a non-resource rule never grants resources, nor a resource rule paths
        (urls("*", "*"), attrs("get", "pods"), False),
        (rule("*", "*", "*"), attrs("get", path="/healthz"), False),
    ],
)  # fmt: skip
def test_rule_features(rule_: dict[str, Any], request_: RequestAttributes, allowed: bool) -> None:
    assert with_cluster_rule(rule_).authorize(request_).allowed is allowed


def test_role_binding_grants_cluster_role_in_its_namespace_only() -> None:
    authz = RBACAuthorizer.of(
        PolicySnapshot(
            cluster_roles=[
                role("reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
            ],
            role_bindings=[binding("b", "ClusterRole", "reader", USER, namespace="dev")],
        )
    )
    assert authz.authorize(attrs("list", "pods", namespace="dev")).allowed
    assert not authz.authorize(attrs("list", "pods", namespace="prod")).allowed
    assert not authz.authorize(attrs("list", "pods")).allowed  # all namespaces: cluster scope


def test_role_binding_to_a_role_of_its_namespace() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    authz = RBACAuthorizer.of(
        PolicySnapshot(
            roles=[role("r", rules, namespace="dev"), role("other", rules, namespace="prod")],
            role_bindings=[
                binding("b", "Role", "r", USER, namespace="dev"),
                # names a Role of another namespace: resolves in its own, where there is none
                binding("c", "Role", "other", USER, namespace="qa"),
            ],
        )
    )
    decision = authz.authorize(attrs("get", "pods", namespace="dev", name="p"))
    assert decision.allowed
    assert decision.reason == 'RBAC: allowed by RoleBinding "b/dev" of Role "r" to User "john"'
    refused = authz.authorize(attrs("get", "pods", namespace="qa", name="p"))
    assert not refused.allowed
    assert refused.reason == 'RBAC: role.rbac.authorization.k8s.io "other" not found'


def test_groups_and_service_accounts_are_subjects() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    authz = RBACAuthorizer.of(
        PolicySnapshot(
            cluster_roles=[role("r", rules)],
            cluster_role_bindings=[binding("g", "ClusterRole", "r", [{"kind": "Group", "name": "devs"}])],
            role_bindings=[
                binding("sa", "ClusterRole", "r", [{"kind": "ServiceAccount", "name": "bot"}], namespace="ci")
            ],
        )
    )
    decision = authz.authorize(attrs("list", "pods", namespace="x"))
    assert decision.reason == 'RBAC: allowed by ClusterRoleBinding "g" of ClusterRole "r" to Group "devs"'
    bot = UserInfo("system:serviceaccount:ci:bot")
    assert authz.authorize(attrs("list", "pods", namespace="ci", user=bot)).allowed
    assert not authz.authorize(attrs("list", "pods", namespace="other", user=bot)).allowed
    assert not authz.authorize(attrs("list", "pods", namespace="x", user=UserInfo("eve"))).allowed


def test_non_resource_urls_only_through_cluster_role_bindings() -> None:
    authz = RBACAuthorizer.of(
        PolicySnapshot(
            cluster_roles=[role("r", [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])],
            role_bindings=[binding("b", "ClusterRole", "r", USER, namespace="dev")],
        )
    )
    assert not authz.authorize(attrs("get", path="/healthz")).allowed


def test_system_masters_is_always_allowed() -> None:
    authz = RBACAuthorizer.of(PolicySnapshot())
    root = UserInfo("root", ("system:masters",))
    assert authz.authorize(attrs("delete", "nodes", name="n", user=root)).allowed
    assert authz.authorize(attrs("get", path="/anything", user=root)).allowed


def test_aggregation_is_the_union_of_matching_roles_transitively() -> None:
    label = "rbac.authorization.k8s.io/aggregate-to-{}"
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}

    def collects(what: str) -> dict[str, Any]:
        return {"clusterRoleSelectors": [{"matchLabels": {label.format(what): "true"}}]}

    def labelled(what: str) -> dict[str, Any]:
        return {"labels": {label.format(what): "true"}}

    roles = [
        role("view", [], aggregationRule=collects("view"), metadata=labelled("edit")),
        role("edit", [pods], aggregationRule=collects("edit")),
        role("to-view", [pods], metadata=labelled("view")),
        role("to-edit", [secrets], metadata=labelled("edit")),
        role("loop", [], aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"loop": "x"}}]},
             metadata={"labels": {"loop": "x"}}),
    ]  # fmt: skip
    rules = aggregate_cluster_roles(roles)
    assert set(rules["view"]) == {Rule.of(pods)}
    assert set(rules["edit"]) == {
        Rule.of(pods),
        Rule.of(secrets),
    }  # own rules replaced, as the controller does
    assert rules["loop"] == ()


def test_snapshot_is_recompiled_when_the_source_returns_a_new_one() -> None:
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    current = [PolicySnapshot()]
    authz = RBACAuthorizer(lambda: current[0])
    assert not authz.authorize(attrs("get", "pods", namespace="a")).allowed
    current[0] = PolicySnapshot(
        cluster_roles=[role("r", [rule])], cluster_role_bindings=[binding("b", "ClusterRole", "r", USER)]
    )
    assert authz.authorize(attrs("get", "pods", namespace="a")).allowed


def test_missing_roles_give_the_reason_kubernetes_gives() -> None:
    authz = RBACAuthorizer.of(
        PolicySnapshot(
            cluster_role_bindings=[binding("b", "ClusterRole", "gone", USER)],
            role_bindings=[binding("c", "Role", "gone-too", USER, namespace="a")],
        )
    )
    decision = authz.authorize(attrs("get", "pods", namespace="a"))
    assert decision.reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'role.rbac.authorization.k8s.io "gone-too" not found]'
    )


def test_forbidden_status_namespaced_collection() -> None:
    status = forbidden_status(attrs("list", "pods", namespace="kube-system"), "")
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods is forbidden: User "john" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"',
        "reason": "Forbidden",
        "details": {"kind": "pods"},
        "code": 403,
    }


def test_forbidden_status_named_cluster_scoped_and_subresource() -> None:
    named = forbidden_status(
        attrs("get", "deployments", api_group="apps", namespace="d", name="web", subresource="scale")
    )
    assert named["message"] == (
        'deployments.apps "web" is forbidden: User "john" cannot get resource "deployments/scale" '
        'in API group "apps" in the namespace "d"'
    )
    assert named["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    cluster = forbidden_status(attrs("list", "nodes"), "RBAC: x")
    assert cluster["message"] == (
        'nodes is forbidden: User "john" cannot list resource "nodes" in API group "" '
        "at the cluster scope: RBAC: x"
    )
    path = forbidden_status(attrs("get", path="/metrics"))
    assert path["message"] == 'forbidden: User "john" cannot get path "/metrics"'
    assert path["details"] == {}


def test_an_invalid_stored_selector_aggregates_nothing() -> None:
    bad = {"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Bogus"}]}]}
    rules = aggregate_cluster_roles([role("agg", [], aggregationRule=bad), role("x", [rule("get", "pods")])])
    assert rules["agg"] == ()
