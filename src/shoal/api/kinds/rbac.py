"""Role, ClusterRole, RoleBinding, ClusterRoleBinding (rbac.authorization.k8s.io/v1).

Validation follows Kubernetes' ``pkg/apis/rbac/validation``: names are path segments (``:`` is
allowed, as in ``system:aggregate-to-edit``), every rule has verbs, resource rules name API
groups and resources, non-resource URLs only in cluster roles and never mixed with resources;
a binding's ``roleRef`` names a Role or ClusterRole of this group and never changes; subjects
are Users, Groups or ServiceAccounts. Defaults as upstream: ``roleRef.apiGroup`` and the
``apiGroup`` of User and Group subjects are ``rbac.authorization.k8s.io``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.api.errors import FieldError, invalid, required, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import LABEL_SELECTOR, top_level
from shoal.api.schema import Arr, Obj, Str
from shoal.api.selectors import label_selector_errors
from shoal.api.validation import dns1123_label, dns1123_subdomain

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")

POLICY_RULE = Obj(
    "io.k8s.api.rbac.v1.PolicyRule",
    {
        "apiGroups": Arr(Str()),
        "nonResourceURLs": Arr(Str()),
        "resourceNames": Arr(Str()),
        "resources": Arr(Str()),
        "verbs": Arr(Str()),
    },
    required=("verbs",),
)

AGGREGATION_RULE = Obj(
    "io.k8s.api.rbac.v1.AggregationRule",
    {"clusterRoleSelectors": Arr(LABEL_SELECTOR)},
)

ROLE_REF = Obj(
    "io.k8s.api.rbac.v1.RoleRef",
    {"apiGroup": Str(default=GROUP), "kind": Str(), "name": Str()},
    required=("apiGroup", "kind", "name"),
)

SUBJECT = Obj(
    "io.k8s.api.rbac.v1.Subject",
    {"apiGroup": Str(), "kind": Str(), "name": Str(), "namespace": Str()},
    required=("kind", "name"),
)


def rbac_name(value: str) -> list[str]:
    """Kubernetes' ``ValidateRBACName``: any path segment name."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _rule_errors(rule: dict[str, Any], path: str, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    if not rule.get("verbs"):
        errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errors.append(
                invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            errors.append(invalid(f"{path}.nonResourceURLs", urls, detail))
        return errors
    if not rule.get("apiGroups"):
        errors.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errors.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errors


def _rules_errors(obj: Object, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        errors += _rule_errors(rule, f"rules[{i}]", namespaced)
    return errors


def validate_role(obj: Object) -> list[FieldError]:
    return _rules_errors(obj, namespaced=True)


def validate_cluster_role(obj: Object) -> list[FieldError]:
    errors = _rules_errors(obj, namespaced=False)
    aggregation = obj.get("aggregationRule")
    if aggregation is not None:
        selectors = aggregation.get("clusterRoleSelectors") or []
        if not selectors:
            detail = "at least one clusterRoleSelector required if aggregationRule is non-nil"
            errors.append(required("aggregationRule.clusterRoleSelectors", detail))
        for i, selector in enumerate(selectors):
            errors += label_selector_errors(selector, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errors


def default_binding(obj: Object) -> None:
    for subject in obj.get("subjects") or []:
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = GROUP


def _subject_errors(subject: dict[str, Any], path: str, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    name, kind, group = subject.get("name", ""), subject.get("kind", ""), subject.get("apiGroup", "")
    if not name:
        errors.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errors += [invalid(f"{path}.name", name, p) for p in dns1123_subdomain(name)]
        if group:
            errors.append(unsupported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errors.append(required(f"{path}.namespace"))
        elif subject.get("namespace"):
            errors += [
                invalid(f"{path}.namespace", subject["namespace"], p)
                for p in dns1123_label(subject["namespace"])
            ]
    elif kind in ("User", "Group"):
        if group != GROUP:
            errors.append(unsupported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errors.append(unsupported(f"{path}.kind", kind, list(SUBJECT_KINDS)))
    return errors


def _binding_validator(namespaced: bool) -> Callable[[Object], list[FieldError]]:
    role_kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]

    def validate(obj: Object) -> list[FieldError]:
        errors: list[FieldError] = []
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != GROUP:
            errors.append(unsupported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
        if ref.get("kind") not in role_kinds:
            errors.append(unsupported("roleRef.kind", ref.get("kind", ""), role_kinds))
        if not ref.get("name"):
            errors.append(required("roleRef.name"))
        else:
            errors += [invalid("roleRef.name", ref["name"], p) for p in rbac_name(ref["name"])]
        for i, subject in enumerate(obj.get("subjects") or []):
            errors += _subject_errors(subject, f"subjects[{i}]", namespaced)
        return errors

    return validate


def validate_binding_update(new: Object, old: Object) -> list[FieldError]:
    if new.get("roleRef") != old.get("roleRef"):
        return [invalid("roleRef", new.get("roleRef"), "cannot change roleRef")]
    return []


def _subjects(kind: str) -> Callable[[Object], str]:
    def cell(obj: Object) -> str:
        names = []
        for s in obj.get("subjects") or []:
            if s.get("kind") != kind:
                continue
            names.append(f"{s.get('namespace', '')}/{s['name']}" if kind == "ServiceAccount" else s["name"])
        return ", ".join(names)

    return cell


CREATED_AT = Column(
    "Created At",
    lambda o: dig(o, "metadata", "creationTimestamp", default=""),
    type="date",
    description="when the object was created",
)
_ROLE_COLUMNS = (NAME, CREATED_AT)
_BINDING_COLUMNS = (
    NAME,
    Column(
        "Role", lambda o: f"{dig(o, 'roleRef', 'kind', default='')}/{dig(o, 'roleRef', 'name', default='')}"
    ),
    AGE,
    Column("Users", _subjects("User"), priority=1),
    Column("Groups", _subjects("Group"), priority=1),
    Column("ServiceAccounts", _subjects("ServiceAccount"), priority=1),
)

RULES = Arr(POLICY_RULE)


def _binding_schema(name: str) -> Obj:
    schema = top_level(name, roleRef=ROLE_REF, subjects=Arr(SUBJECT))
    return Obj(schema.name, schema.fields, required=("roleRef",))


ROLE = Kind(
    group=GROUP,
    version="v1",
    kind="Role",
    plural="roles",
    singular="role",
    namespaced=True,
    has_status=False,
    name_rule=rbac_name,
    schema=top_level("io.k8s.api.rbac.v1.Role", rules=RULES),
    columns=_ROLE_COLUMNS,
    validate=validate_role,
)

CLUSTER_ROLE = Kind(
    group=GROUP,
    version="v1",
    kind="ClusterRole",
    plural="clusterroles",
    singular="clusterrole",
    namespaced=False,
    has_status=False,
    name_rule=rbac_name,
    schema=top_level("io.k8s.api.rbac.v1.ClusterRole", rules=RULES, aggregationRule=AGGREGATION_RULE),
    columns=_ROLE_COLUMNS,
    validate=validate_cluster_role,
)

ROLE_BINDING = Kind(
    group=GROUP,
    version="v1",
    kind="RoleBinding",
    plural="rolebindings",
    singular="rolebinding",
    namespaced=True,
    has_status=False,
    name_rule=rbac_name,
    schema=_binding_schema("io.k8s.api.rbac.v1.RoleBinding"),
    columns=_BINDING_COLUMNS,
    default=default_binding,
    validate=_binding_validator(namespaced=True),
    validate_update=validate_binding_update,
)

CLUSTER_ROLE_BINDING = Kind(
    group=GROUP,
    version="v1",
    kind="ClusterRoleBinding",
    plural="clusterrolebindings",
    singular="clusterrolebinding",
    namespaced=False,
    has_status=False,
    name_rule=rbac_name,
    schema=_binding_schema("io.k8s.api.rbac.v1.ClusterRoleBinding"),
    columns=_BINDING_COLUMNS,
    default=default_binding,
    validate=_binding_validator(namespaced=False),
    validate_update=validate_binding_update,
)
