"""The default ClusterRoles, after Kubernetes' bootstrap policy (``plugin/pkg/auth/authorizer/
rbac/bootstrappolicy/policy.go``), reduced to the kinds shoal serves.

``cluster-admin`` may do anything. ``admin``, ``edit`` and ``view`` are aggregated roles with no
rules of their own: ``view`` collects the roles labelled ``aggregate-to-view``, ``edit`` those
labelled ``aggregate-to-edit`` (``view`` is one), ``admin`` those labelled
``aggregate-to-admin`` (``edit`` is one). The rules themselves live in
``system:aggregate-to-{view,edit,admin}``, as upstream. So ``view`` reads what is not
escalating (no Secrets, no roles), ``edit`` writes workloads and reads and writes Secrets but
never roles or bindings nor ``/status``, ``admin`` adds Roles and RoleBindings (within the
namespace it is bound in). None of them touches Nodes, Leases or cluster-scoped RBAC objects.
Nodes get nothing here: the Node authorizer (``nodeauthz``) decides for them.
"""

from __future__ import annotations

from typing import Any

from shoal.api.errors import NotFound
from shoal.api.kinds.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING
from shoal.client._interface import Client
from shoal.security.identity import MASTERS_GROUP

Object = dict[str, Any]

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = READ + WRITE
LABEL = "rbac.authorization.k8s.io/aggregate-to-{}"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _rule(verbs: list[str], group: str, *resources: str) -> Object:
    return {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}


def _cluster_role(name: str, labels: dict[str, str], **fields: Any) -> Object:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {**BOOTSTRAP_LABEL, **labels}},
        **fields,
    }


def _aggregated(name: str, collects: str, labels: dict[str, str]) -> Object:
    selector = {"matchLabels": {LABEL.format(collects): "true"}}
    return _cluster_role(name, labels, aggregationRule={"clusterRoleSelectors": [selector]}, rules=[])


VIEW_RULES = [
    _rule(READ, "", "pods", "services", "services/status", "endpoints", "configmaps"),
    _rule(READ, "", "events", "pods/status", "pods/log", "namespaces/status"),
    _rule(READ, "", "namespaces"),
    _rule(
        READ,
        "apps",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/status",
        "deployments/scale",
        "replicasets",
        "replicasets/status",
        "replicasets/scale",
    ),
    _rule(READ, "batch", "jobs", "jobs/status"),
]

EDIT_RULES = [
    # Read on escalating resources (exec over a WebSocket is a GET: verb get).
    _rule(READ, "", "pods/exec", "secrets"),
    _rule(WRITE, "", "pods", "pods/exec"),
    _rule(WRITE, "", "services", "endpoints", "configmaps", "secrets"),
    _rule(
        WRITE, "apps", "daemonsets", "deployments", "deployments/scale", "replicasets", "replicasets/scale"
    ),
    _rule(WRITE, "batch", "jobs"),
]

ADMIN_RULES = [_rule(READ_WRITE, "rbac.authorization.k8s.io", "roles", "rolebindings")]

DEFAULT_CLUSTER_ROLES: tuple[Object, ...] = (
    _cluster_role(
        "cluster-admin",
        {},
        rules=[
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _aggregated("admin", "admin", {}),
    _aggregated("edit", "edit", {LABEL.format("admin"): "true"}),
    _aggregated("view", "view", {LABEL.format("edit"): "true"}),
    _cluster_role("system:aggregate-to-admin", {LABEL.format("admin"): "true"}, rules=ADMIN_RULES),
    _cluster_role("system:aggregate-to-edit", {LABEL.format("edit"): "true"}, rules=EDIT_RULES),
    _cluster_role("system:aggregate-to-view", {LABEL.format("view"): "true"}, rules=VIEW_RULES),
    _cluster_role(
        "system:discovery",
        {},
        rules=[
            {
                "nonResourceURLs": [
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
                "verbs": ["get"],
            }
        ],
    ),
)

DEFAULT_CLUSTER_ROLE_BINDINGS: tuple[Object, ...] = (
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cluster-admin", "labels": dict(BOOTSTRAP_LABEL)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": MASTERS_GROUP}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:discovery", "labels": dict(BOOTSTRAP_LABEL)},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:discovery",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
        ],
    },
)

_COMPARED = ("rules", "aggregationRule", "roleRef", "subjects")


async def bootstrap_roles(client: Client) -> list[str]:
    """Create the default roles and bindings, or put back what differs from the defaults
    (labels are merged, never removed). Idempotent; returns the names it wrote."""
    written: list[str] = []
    for kind, objects in (
        (CLUSTER_ROLE, DEFAULT_CLUSTER_ROLES),
        (CLUSTER_ROLE_BINDING, DEFAULT_CLUSTER_ROLE_BINDINGS),
    ):
        for wanted in objects:
            name = wanted["metadata"]["name"]
            try:
                current = await client.get(kind, name)
            except NotFound:
                await client.create(kind, wanted)
                written.append(name)
                continue
            labels = {**(current["metadata"].get("labels") or {}), **wanted["metadata"]["labels"]}
            same = all(current.get(f) == wanted.get(f) for f in _COMPARED if f in wanted)
            if same and labels == current["metadata"].get("labels"):
                continue
            updated = {**current, **{f: wanted[f] for f in _COMPARED if f in wanted}}
            updated["metadata"] = {**current["metadata"], "labels": labels}
            await client.update(kind, updated)
            written.append(name)
    return written
