"""Escalation prevention: no granting of rights one does not hold, unless escalate/bind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shoal.security.default_roles import DEFAULT_CLUSTER_ROLES
from shoal.security.escalation import (
    authorize_binding_write,
    authorize_role_write,
    check_escalation,
    escalation_forbidden_message,
)
from shoal.security.identity import UserInfo
from shoal.security.rbac import PolicySnapshot, RBACAuthorizer

JOHN = UserInfo("john", ("devs",))
RBAC = "rbac.authorization.k8s.io"


def _crb(name: str, role: str, user: str = "john") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user}],
    }


def _rb(name: str, role: str, namespace: str, kind: str = "ClusterRole") -> dict[str, Any]:
    return {
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
        "subjects": [{"kind": "User", "name": "john"}],
    }


def authz(
    *, cluster_roles: Sequence[Any] = (), crbs: Sequence[Any] = (), rbs: Sequence[Any] = ()
) -> RBACAuthorizer:
    snapshot = PolicySnapshot(
        cluster_roles=[*DEFAULT_CLUSTER_ROLES, *cluster_roles], cluster_role_bindings=crbs, role_bindings=rbs
    )
    return RBACAuthorizer.of(snapshot)


PODS_GET = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
PODS_DELETE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}


def test_rules_held_may_be_granted() -> None:
    a = authz(rbs=[_rb("a", "admin", "team")])
    assert check_escalation(JOHN, [PODS_GET, PODS_DELETE], a, "team").allowed
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "team"}, "rules": [PODS_GET]}
    assert authorize_role_write(JOHN, role, a).allowed


def test_rules_not_held_are_refused_with_kubernetes_words() -> None:
    a = authz(rbs=[_rb("v", "view", "team")])
    decision = check_escalation(
        JOHN, [PODS_GET, PODS_DELETE, {"nonResourceURLs": ["/x"], "verbs": ["get"]}], a, "team"
    )
    assert not decision.allowed
    assert decision.reason == (
        'user "john" (groups=["devs"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
        '{NonResourceURLs:["/x"], Verbs:["get"]}'
    )
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "team"}, "rules": [PODS_DELETE]}
    assert escalation_forbidden_message(role, decision.reason).startswith(
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "john"'
    )


def test_namespaced_rights_do_not_cover_another_namespace_or_cluster_roles() -> None:
    a = authz(rbs=[_rb("a", "admin", "team")])
    assert not check_escalation(JOHN, [PODS_GET], a, "other").allowed
    cluster_role = {"kind": "ClusterRole", "metadata": {"name": "c"}, "rules": [PODS_GET]}
    assert not authorize_role_write(JOHN, cluster_role, a).allowed


def test_resource_names_and_wildcards() -> None:
    named = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}
    a = authz(cluster_roles=[{"metadata": {"name": "n"}, "rules": [named]}], crbs=[_crb("b", "n")])
    assert check_escalation(JOHN, [named], a, "").allowed
    assert not check_escalation(JOHN, [{**named, "resourceNames": ["a", "b"]}], a, "").allowed
    assert not check_escalation(JOHN, [{**named, "resourceNames": []}], a, "").allowed
    admin = authz(crbs=[_crb("b", "cluster-admin")])
    assert check_escalation(
        JOHN, [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], admin, "x"
    ).allowed


def test_escalate_verb_allows_any_rules_and_masters_too() -> None:
    escalate = {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["create", "escalate"]}
    a = authz(
        cluster_roles=[{"metadata": {"name": "esc"}, "rules": [escalate]}], rbs=[_rb("e", "esc", "team")]
    )
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "team"}, "rules": [PODS_DELETE]}
    assert authorize_role_write(JOHN, role, a).allowed
    assert authorize_role_write(UserInfo("root", ("system:masters",)), role, authz()).allowed


def test_aggregation_rule_needs_escalate() -> None:
    a = authz(crbs=[_crb("b", "cluster-admin")])
    aggregated = {
        "kind": "ClusterRole",
        "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": []},
    }
    assert authorize_role_write(JOHN, aggregated, a).allowed  # cluster-admin holds escalate (verbs "*")
    weak = authz(rbs=[_rb("a", "admin", "team")])
    decision = authorize_role_write(JOHN, aggregated, weak)
    assert decision.reason == "must have cluster-admin privileges to use the aggregationRule"


def test_binding_to_a_role_with_more_rights_is_refused() -> None:
    a = authz(rbs=[_rb("a", "admin", "team")])
    # admin in team may bind edit or view there (holds all their rules in team) ...
    assert authorize_binding_write(JOHN, _rb("x", "edit", "team"), a).allowed
    assert authorize_binding_write(JOHN, _rb("x", "admin", "team"), a).allowed
    # ... but not cluster-admin, nor anything in another namespace, nor cluster-wide.
    refused = authorize_binding_write(JOHN, _rb("x", "cluster-admin", "team"), a)
    assert not refused.allowed
    assert 'is attempting to grant RBAC permissions not currently held:\n{APIGroups:["*"]' in refused.reason
    assert not authorize_binding_write(JOHN, _rb("x", "view", "other"), a).allowed
    crb = {**_crb("x", "view"), "kind": "ClusterRoleBinding"}
    assert not authorize_binding_write(JOHN, crb, a).allowed


def test_bind_verb_allows_binding_the_named_role_only() -> None:
    bind = {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"]}
    a = authz(
        cluster_roles=[{"metadata": {"name": "binder"}, "rules": [bind]}], rbs=[_rb("b", "binder", "team")]
    )
    assert authorize_binding_write(JOHN, _rb("x", "edit", "team"), a).allowed
    assert not authorize_binding_write(JOHN, _rb("x", "admin", "team"), a).allowed


def test_binding_to_a_missing_role_is_refused() -> None:
    decision = authorize_binding_write(JOHN, _rb("x", "nope", "team", kind="Role"), authz())
    assert decision.reason == 'role.rbac.authorization.k8s.io "nope" not found'
