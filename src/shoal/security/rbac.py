"""The RBAC authorizer: Role, ClusterRole, RoleBinding and ClusterRoleBinding with
Kubernetes' semantics.

**Feeding.** The authorizer reads a ``PolicySnapshot`` (the four lists of objects) from a
callable, typically one that returns what the server's informers last built. Whenever the
callable returns a *different* snapshot object, the authorizer compiles it once (bindings
indexed by subject, rules compiled, aggregation resolved); otherwise every ``authorize`` is a
few dictionary lookups and rule matches, synchronous and without I/O. Whoever feeds it must
therefore build a new snapshot on change rather than mutate the old one.

**Aggregation** is computed on read, at compile time: the rules of a ClusterRole with an
``aggregationRule`` are the union of the (themselves resolved) rules of every other ClusterRole
whose labels match one of its selectors, its own ``rules`` ignored, as the Kubernetes
aggregation controller would overwrite them. So ``admin`` grants what ``edit`` grants, which
grants what ``view`` grants, without a controller writing the union back into the store (the
stored object then shows no rules, unlike upstream: a controller can come later).

The group ``system:masters`` is always allowed. A RoleBinding grants its role (a Role of its
namespace, or a ClusterRole) only within its own namespace; non-resource URLs are granted by
ClusterRoleBindings only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.api.errors import ApiError
from shoal.api.selectors import LabelSelector
from shoal.security.identity import MASTERS_GROUP, Decision, RequestAttributes, UserInfo
from shoal.security.rules import Rule

Object = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class PolicySnapshot:
    roles: Sequence[Object] = ()
    cluster_roles: Sequence[Object] = ()
    role_bindings: Sequence[Object] = ()
    cluster_role_bindings: Sequence[Object] = ()


def subject_key(subject: Object, binding_namespace: str) -> tuple[str, str] | None:
    """("user", name) or ("group", name) for a binding's subject; a ServiceAccount is the user
    ``system:serviceaccount:<namespace>:<name>`` (its namespace defaults to the binding's)."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return ("user", name)
    if kind == "Group":
        return ("group", name)
    if kind == "ServiceAccount":
        return ("user", f"{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace') or binding_namespace}:{name}")
    return None


def _describe_subject(subject: Object, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


@dataclass(frozen=True, slots=True)
class _Grant:
    """One binding as seen from one of its subjects."""

    binding: Object
    subject: Object
    namespace: str  # "" for a ClusterRoleBinding

    def describe(self) -> str:
        ref, name = self.binding["roleRef"], self.binding["metadata"]["name"]
        what = f'RoleBinding "{name}/{self.namespace}"' if self.namespace else f'ClusterRoleBinding "{name}"'
        subject = _describe_subject(self.subject, self.namespace)
        return f'{what} of {ref.get("kind")} "{ref.get("name")}" to {subject}'


def _selector(selector: Object) -> LabelSelector:
    """A stored selector compiled; one that does not (admission refuses those) selects nothing."""
    try:
        return LabelSelector.from_object(selector)
    except ApiError:
        return LabelSelector.nothing()


def aggregate_cluster_roles(cluster_roles: Iterable[Object]) -> dict[str, tuple[Rule, ...]]:
    """Each ClusterRole's effective rules, aggregation resolved (transitively, cycle-safe)."""
    by_name = {r["metadata"]["name"]: r for r in cluster_roles}
    resolved: dict[str, tuple[Rule, ...]] = {}

    def rules_of(name: str, visiting: frozenset[str]) -> tuple[Rule, ...]:
        if name in resolved:
            return resolved[name]
        role = by_name[name]
        aggregation = role.get("aggregationRule")
        if aggregation is None:
            out = tuple(dict.fromkeys(Rule.of(r) for r in role.get("rules") or ()))
        else:
            selectors = [_selector(s) for s in aggregation.get("clusterRoleSelectors") or ()]
            collected: dict[Rule, None] = {}
            for other_name in sorted(by_name):
                if other_name == name or other_name in visiting:
                    continue
                labels = by_name[other_name].get("metadata", {}).get("labels") or {}
                if any(s.matches(labels) for s in selectors):
                    collected.update(dict.fromkeys(rules_of(other_name, visiting | {name})))
            out = tuple(collected)
        if not visiting:
            resolved[name] = out
        return out

    for name in by_name:
        resolved[name] = rules_of(name, frozenset())
    return resolved


@dataclass
class _Compiled:
    cluster_roles: dict[str, tuple[Rule, ...]]
    roles: dict[tuple[str, str], tuple[Rule, ...]]
    cluster_grants: dict[tuple[str, str], list[_Grant]] = field(default_factory=dict)
    # (namespace, subject key) -> grants of that namespace's RoleBindings
    namespace_grants: dict[tuple[str, str, str], list[_Grant]] = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: PolicySnapshot) -> _Compiled:
        roles = {
            (r["metadata"].get("namespace", ""), r["metadata"]["name"]): tuple(
                Rule.of(x) for x in r.get("rules") or ()
            )
            for r in snapshot.roles
        }
        out = cls(aggregate_cluster_roles(snapshot.cluster_roles), roles)
        for binding in snapshot.cluster_role_bindings:
            for subject in binding.get("subjects") or ():
                key = subject_key(subject, "")
                if key is not None:
                    out.cluster_grants.setdefault(key, []).append(_Grant(binding, subject, ""))
        for binding in snapshot.role_bindings:
            namespace = binding["metadata"].get("namespace", "")
            for subject in binding.get("subjects") or ():
                key = subject_key(subject, namespace)
                if key is not None:
                    out.namespace_grants.setdefault((namespace, *key), []).append(
                        _Grant(binding, subject, namespace)
                    )
        return out

    def role_rules(self, ref: Object, namespace: str) -> tuple[tuple[Rule, ...] | None, str]:
        """The rules a roleRef names, or None and the error Kubernetes reports."""
        name = ref.get("name", "")
        if ref.get("kind") == "ClusterRole":
            rules = self.cluster_roles.get(name)
            return (
                rules,
                "" if rules is not None else f'clusterrole.rbac.authorization.k8s.io "{name}" not found',
            )
        rules = self.roles.get((namespace, name))
        return rules, "" if rules is not None else f'role.rbac.authorization.k8s.io "{name}" not found'

    def grants(self, user: UserInfo, namespace: str) -> Iterable[_Grant]:
        keys = [("user", user.name), *(("group", g) for g in user.groups)]
        for key in keys:
            yield from self.cluster_grants.get(key, ())
        if namespace:
            for key in keys:
                yield from self.namespace_grants.get((namespace, *key), ())


def _aggregate_errors(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


class RBACAuthorizer:
    def __init__(self, source: Callable[[], PolicySnapshot]) -> None:
        self._source = source
        self._snapshot: PolicySnapshot | None = None
        self._compiled: _Compiled | None = None

    @classmethod
    def of(cls, snapshot: PolicySnapshot) -> RBACAuthorizer:
        return cls(lambda: snapshot)

    def _current(self) -> _Compiled:
        snapshot = self._source()
        if snapshot is not self._snapshot or self._compiled is None:
            self._compiled = _Compiled.of(snapshot)
            self._snapshot = snapshot
        return self._compiled

    def authorize(self, attrs: RequestAttributes) -> Decision:
        if MASTERS_GROUP in attrs.user.groups:
            return Decision(True, f'allowed by group "{MASTERS_GROUP}"')
        compiled = self._current()
        errors: list[str] = []
        for grant in compiled.grants(attrs.user, attrs.namespace):
            rules, error = compiled.role_rules(grant.binding.get("roleRef") or {}, grant.namespace)
            if rules is None:
                errors.append(error)
                continue
            if any(rule.allows(attrs) for rule in rules):
                return Decision(True, f"RBAC: allowed by {grant.describe()}")
        return Decision(False, f"RBAC: {_aggregate_errors(errors)}" if errors else "")

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """Every rule the user holds in ``namespace`` (cluster-wide ones included), and the
        errors met resolving roleRefs: what an escalation check compares against."""
        compiled = self._current()
        rules: list[Rule] = []
        errors: list[str] = []
        for grant in compiled.grants(user, namespace):
            found, error = compiled.role_rules(grant.binding.get("roleRef") or {}, grant.namespace)
            if found is None:
                errors.append(error)
            else:
                rules += found
        return rules, errors

    def role_ref_rules(self, ref: Object, namespace: str) -> tuple[tuple[Rule, ...] | None, str]:
        """The rules a binding's roleRef grants (None and the reason if it names no role)."""
        return self._current().role_rules(ref, namespace)


def forbidden_message(attrs: RequestAttributes, reason: str = "") -> str:
    """The message of kube-apiserver's 403, e.g. ``pods is forbidden: User "john" cannot list
    resource "pods" in API group "" in the namespace "kube-system"``."""
    user = attrs.user.name
    if not attrs.is_resource_request:
        text = f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        text = f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}"'
        text += f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    if reason:
        text = f"{text}: {reason}"
    if not attrs.is_resource_request:
        return f"forbidden: {text}"
    if attrs.name:
        return f'{attrs.qualified_resource} "{attrs.name}" is forbidden: {text}'
    return f"{attrs.qualified_resource} is forbidden: {text}"


def forbidden_status(attrs: RequestAttributes, reason: str = "") -> dict[str, Any]:
    """The ``metav1.Status`` kube-apiserver answers a refused request with (HTTP 403);
    ``details.kind`` is the resource (``pods``), as ``NewForbidden`` fills it."""
    details: dict[str, str] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.resource:
        details["kind"] = attrs.resource
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(attrs, reason),
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }
