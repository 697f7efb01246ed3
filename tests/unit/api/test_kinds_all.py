"""Every kind: a minimal valid object admits cleanly, is stable under a second admission
(defaults are idempotent, as an update re-admits a stored object), and every column and
field selector can be computed from it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.api import ALL_KINDS
from shoal.api.admission import admit
from shoal.api.kind import Kind

_POD_SPEC = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
_TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": {**_POD_SPEC, "restartPolicy": "Always"}}
_SELECTOR = {"matchLabels": {"app": "a"}}

MINIMAL: dict[str, dict[str, Any]] = {
    "Namespace": {},
    "Node": {},
    "Pod": {"spec": _POD_SPEC},
    "Service": {"spec": {"ports": [{"port": 80}]}},
    "Endpoints": {},
    "Secret": {},
    "ConfigMap": {},
    "Event": {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}},
    "Lease": {"spec": {}},
    "Deployment": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "ReplicaSet": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "DaemonSet": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "Job": {"spec": {"template": {"spec": _POD_SPEC}}},
    "Role": {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    "ClusterRole": {"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
    "RoleBinding": {
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "u"}],
    },
    "ClusterRoleBinding": {
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
    },
}


def minimal(kind: Kind) -> dict[str, Any]:
    meta = {"name": "a", "namespace": "default"} if kind.namespaced else {"name": "a"}
    return {"metadata": meta, **copy.deepcopy(MINIMAL[kind.kind])}


def test_every_kind_has_an_example() -> None:
    assert sorted(MINIMAL) == sorted(k.kind for k in ALL_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_minimal_object_is_valid_and_defaults_are_idempotent(kind: Kind) -> None:
    once, errors, unknown = admit(kind, minimal(kind))
    assert [str(e) for e in errors] == [] and unknown == []
    twice, errors, _ = admit(kind, once)
    assert errors == [] and twice == once
    if kind.validate_update is not None:
        assert kind.validate_update(twice, once) == []


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_columns_and_field_selectors_work_on_a_fresh_object(kind: Kind) -> None:
    obj, _, _ = admit(kind, minimal(kind))
    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    assert kind.columns, "every kind prints a table"
    assert kind.columns[0].name in ("Name", "Last Seen")
    for column in kind.columns:
        value = column.value(obj)
        assert isinstance(value, int if column.type == "integer" else str), column.name
    for name, get in kind.field_selectors.items():
        assert isinstance(get(obj), str), name
