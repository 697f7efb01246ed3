"""RBAC escalation prevention, as Kubernetes' ``rbac/registry`` does it.

A user may create or update a Role/ClusterRole only with rules they already hold in that
namespace (cluster-wide for a ClusterRole), unless they have the ``escalate`` verb on that
role; and may create or update a binding only to a role whose every rule they hold, unless
they have the ``bind`` verb on the role it names. ``system:masters`` may do anything. A
ClusterRole with an ``aggregationRule`` needs ``escalate`` (or masters) outright.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.security.identity import MASTERS_GROUP, Decision, RequestAttributes, UserInfo
from shoal.security.rbac import GROUP, RBACAuthorizer
from shoal.security.rules import Rule, breakdown, compact, compact_string

Object = dict[str, Any]


def _groups(user: UserInfo) -> str:
    return "[" + " ".join(f'"{g}"' for g in user.groups) + "]"


def check_escalation(
    user: UserInfo, requested: Iterable[Rule | Object], authorizer: RBACAuthorizer, namespace: str
) -> Decision:
    """Whether ``user`` holds every rule of ``requested`` in ``namespace`` ("" for cluster
    scope); the refusal reads as Kubernetes' ``ConfirmNoEscalation``."""
    if MASTERS_GROUP in user.groups:
        return Decision(True, f'allowed by group "{MASTERS_GROUP}"')
    owned, errors = authorizer.rules_for(user, namespace)
    missing: list[Rule] = []
    for item in requested:
        rule = item if isinstance(item, Rule) else Rule.of(item)
        missing += [atom for atom in breakdown(rule) if not any(o.covers(atom) for o in owned)]
    if not missing:
        return Decision(True, "")
    described = sorted({compact_string(r) for r in compact(missing)})
    message = (
        f'user "{user.name}" (groups={_groups(user)}) is attempting to grant RBAC permissions '
        "not currently held:\n" + "\n".join(described)
    )
    if errors:
        message += f"; resolution errors: [{', '.join(errors)}]"
    return Decision(False, message)


def _may(
    authorizer: RBACAuthorizer, user: UserInfo, verb: str, resource: str, namespace: str, name: str
) -> bool:
    attrs = RequestAttributes(user, verb, GROUP, resource, "", namespace, name)
    return authorizer.authorize(attrs).allowed


def authorize_role_write(user: UserInfo, role: Object, authorizer: RBACAuthorizer) -> Decision:
    """The check on a create or update of a Role or ClusterRole (the object after the change)."""
    if MASTERS_GROUP in user.groups:
        return Decision(True, f'allowed by group "{MASTERS_GROUP}"')
    meta = role.get("metadata") or {}
    cluster = role.get("kind") == "ClusterRole"
    namespace = "" if cluster else meta.get("namespace", "")
    resource = "clusterroles" if cluster else "roles"
    if _may(authorizer, user, "escalate", resource, namespace, meta.get("name", "")):
        return Decision(True, "allowed by the escalate verb")
    if cluster and role.get("aggregationRule") is not None:
        return Decision(False, "must have cluster-admin privileges to use the aggregationRule")
    return check_escalation(user, role.get("rules") or (), authorizer, namespace)


def authorize_binding_write(user: UserInfo, binding: Object, authorizer: RBACAuthorizer) -> Decision:
    """The check on a create or update of a RoleBinding or ClusterRoleBinding."""
    if MASTERS_GROUP in user.groups:
        return Decision(True, f'allowed by group "{MASTERS_GROUP}"')
    ref = binding.get("roleRef") or {}
    namespace = (
        "" if binding.get("kind") == "ClusterRoleBinding" else binding["metadata"].get("namespace", "")
    )
    resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
    if _may(authorizer, user, "bind", resource, namespace, ref.get("name", "")):
        return Decision(True, "allowed by the bind verb")
    rules, error = authorizer.role_ref_rules(ref, namespace)
    if rules is None:
        return Decision(False, error)
    return check_escalation(user, rules, authorizer, namespace)


def escalation_forbidden_message(obj: Object, reason: str) -> str:
    """``roles.rbac.authorization.k8s.io "x" is forbidden: <reason>``: the 403's message."""
    plural = {
        "Role": "roles",
        "ClusterRole": "clusterroles",
        "RoleBinding": "rolebindings",
        "ClusterRoleBinding": "clusterrolebindings",
    }[obj.get("kind", "Role")]
    return f'{plural}.{GROUP} "{obj["metadata"].get("name", "")}" is forbidden: {reason}'
