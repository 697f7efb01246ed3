"""The matrix: every built-in kind, every verb, the subresources log/exec/scale/status, for a
user bound (cluster-wide) to ``view``, to ``edit``, to ``admin`` in one namespace only (a
RoleBinding), to ``cluster-admin``, and to nothing: each gets exactly what the expected table
below says, a table written from Kubernetes' bootstrap policy (not from shoal's roles).
"""

from __future__ import annotations

from typing import Any

import pytest

from shoal.api import ALL_KINDS
from shoal.security.default_roles import DEFAULT_CLUSTER_ROLE_BINDINGS, DEFAULT_CLUSTER_ROLES
from shoal.security.identity import COLLECTION_VERBS, RESOURCE_VERBS, RequestAttributes, UserInfo
from shoal.security.rbac import PolicySnapshot, RBACAuthorizer

ALL = frozenset(RESOURCE_VERBS)
R = frozenset({"get", "list", "watch"})
HOME, ELSEWHERE = "team", "other"

# group, resource[/subresource] -> verbs: Kubernetes' system:aggregate-to-view, restricted to
# what shoal serves. No secrets, no nodes, no leases, no RBAC objects.
VIEW: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): R,
    ("", "pods/status"): R,
    ("", "pods/log"): R,
    ("", "services"): R,
    ("", "services/status"): R,
    ("", "endpoints"): R,
    ("", "configmaps"): R,
    ("", "events"): R,
    ("", "namespaces"): R,
    ("", "namespaces/status"): R,
    ("apps", "deployments"): R,
    ("apps", "deployments/status"): R,
    ("apps", "deployments/scale"): R,
    ("apps", "replicasets"): R,
    ("apps", "replicasets/status"): R,
    ("apps", "replicasets/scale"): R,
    ("apps", "daemonsets"): R,
    ("apps", "daemonsets/status"): R,
    ("batch", "jobs"): R,
    ("batch", "jobs/status"): R,
}
# system:aggregate-to-edit on top of view: writes workloads, reads and writes secrets, execs;
# never /status, events, namespaces, nodes, leases or RBAC objects.
EDIT = {
    **VIEW,
    ("", "pods"): ALL,
    ("", "pods/exec"): ALL,
    ("", "secrets"): ALL,
    ("", "services"): ALL,
    ("", "endpoints"): ALL,
    ("", "configmaps"): ALL,
    ("apps", "deployments"): ALL,
    ("apps", "deployments/scale"): ALL,
    ("apps", "replicasets"): ALL,
    ("apps", "replicasets/scale"): ALL,
    ("apps", "daemonsets"): ALL,
    ("batch", "jobs"): ALL,
}
# system:aggregate-to-admin on top of edit: Roles and RoleBindings (in its namespace).
ADMIN = {
    **EDIT,
    ("rbac.authorization.k8s.io", "roles"): ALL,
    ("rbac.authorization.k8s.io", "rolebindings"): ALL,
}

SUBRESOURCES = {
    "pods": ("log", "exec", "status"),
    "deployments": ("scale", "status"),
    "replicasets": ("scale", "status"),
    "daemonsets": ("status",),
    "jobs": ("status",),
    "nodes": ("status",),
    "services": ("status",),
    "namespaces": ("status",),
}

USERS = {
    "view": UserInfo("viewer", ("system:authenticated",)),
    "edit": UserInfo("editor", ("system:authenticated",)),
    "admin": UserInfo("team-admin", ("system:authenticated",)),
    "cluster-admin": UserInfo("root", ("system:authenticated",)),
    "nothing": UserInfo("nobody", ("system:authenticated",)),
}


def _binding(kind: str, name: str, role: str, user: str, namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


AUTHORIZER = RBACAuthorizer.of(
    PolicySnapshot(
        cluster_roles=DEFAULT_CLUSTER_ROLES,
        cluster_role_bindings=[
            *DEFAULT_CLUSTER_ROLE_BINDINGS,
            _binding("ClusterRoleBinding", "v", "view", "viewer"),
            _binding("ClusterRoleBinding", "e", "edit", "editor"),
            _binding("ClusterRoleBinding", "ca", "cluster-admin", "root"),
        ],
        role_bindings=[_binding("RoleBinding", "a", "admin", "team-admin", HOME)],
    )
)


def expected(role: str, group: str, resource: str, verb: str, namespace: str) -> bool:
    if role == "cluster-admin":
        return True
    table = {"view": VIEW, "edit": EDIT, "admin": ADMIN, "nothing": {}}[role]
    if role == "admin" and namespace != HOME:
        return False  # a RoleBinding grants nothing outside its namespace, nor cluster-wide
    return verb in table.get((group, resource), frozenset())


def _cases() -> list[tuple[str, str, str, str]]:
    """(group, resource, subresource, scope) for every kind and subresource; scope is
    "namespaced" or "cluster"."""
    out = []
    for kind in ALL_KINDS:
        scope = "namespaced" if kind.namespaced else "cluster"
        out.append((kind.group, kind.plural, "", scope))
        out += [(kind.group, kind.plural, sub, scope) for sub in SUBRESOURCES.get(kind.plural, ())]
    return out


def _namespaces(scope: str, resource: str, verb: str, subresource: str) -> list[str]:
    if scope == "namespaced":
        return [HOME, ELSEWHERE]
    if resource == "namespaces" and (subresource or verb not in COLLECTION_VERBS):
        # A request for one Namespace carries its name as the namespace (Kubernetes'
        # RequestInfo): a RoleBinding in "team" can read Namespace "team".
        return [HOME, ELSEWHERE]
    return [""]


@pytest.mark.parametrize("role", list(USERS))
@pytest.mark.parametrize(("group", "resource", "subresource", "scope"), _cases(), ids=lambda v: v or "-")
def test_matrix(role: str, group: str, resource: str, subresource: str, scope: str) -> None:
    user = USERS[role]
    wrong = []
    for verb in RESOURCE_VERBS:
        for namespace in _namespaces(scope, resource, verb, subresource):
            name = "" if verb in COLLECTION_VERBS and not subresource else (namespace or "obj")
            if resource != "namespaces" and name:
                name = "obj"
            attrs = RequestAttributes(user, verb, group, resource, subresource, namespace, name)
            combined = f"{resource}/{subresource}" if subresource else resource
            want = expected(role, group, combined, verb, namespace)
            got = AUTHORIZER.authorize(attrs).allowed
            if got != want:
                wrong.append(f"{verb} {combined} in {namespace or '<cluster>'}: got {got}, expected {want}")
    assert wrong == []


def test_matrix_covers_every_kind_and_the_table_names_only_real_resources() -> None:
    served = {(k.group, k.plural) for k in ALL_KINDS}
    served |= {(k.group, f"{k.plural}/{s}") for k in ALL_KINDS for s in SUBRESOURCES.get(k.plural, ())}
    assert set(ADMIN) <= served
    assert len(_cases()) == len(ALL_KINDS) + sum(len(v) for v in SUBRESOURCES.values())


def test_refusal_names_user_verb_resource_and_namespace() -> None:
    from shoal.security.rbac import forbidden_message

    attrs = RequestAttributes(USERS["view"], "get", "", "secrets", "", HOME, "db")
    decision = AUTHORIZER.authorize(attrs)
    assert not decision.allowed
    assert forbidden_message(attrs, decision.reason) == (
        'secrets "db" is forbidden: User "viewer" cannot get resource "secrets" in API group "" '
        'in the namespace "team"'
    )
