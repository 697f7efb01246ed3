"""admit(): normalization, generic metadata checks, and the order of the steps."""

from __future__ import annotations

import copy
from typing import Any

from shoal.api import REGISTRY
from shoal.api.admission import admit
from shoal.api.kinds import CONFIG_MAP, DEPLOYMENT, NAMESPACE, NODE, POD, SERVICE


def errors(kind: Any, obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in admit(kind, obj)[1]]


def cm(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "1"}}


def test_valid_object_comes_back_with_type_meta_first() -> None:
    out, errs, unknown = admit(CONFIG_MAP, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    assert errs == [] and unknown == []
    assert list(out) == ["apiVersion", "kind", "metadata", "data"]
    assert out["apiVersion"] == "v1" and out["kind"] == "ConfigMap"


def test_input_is_not_modified() -> None:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    before = copy.deepcopy(body)
    out, errs, _ = admit(POD, body)
    assert errs == [] and body == before
    assert out["spec"]["restartPolicy"] == "Always"


def test_name_is_required_unless_generate_name() -> None:
    assert errors(CONFIG_MAP, cm()) == ["metadata.name: Required value: name or generateName is required"]
    assert errors(CONFIG_MAP, cm(generateName="web-")) == []


def test_generate_name_prefix_is_checked_with_the_name_rule() -> None:
    assert [e.split(":")[0] for e in errors(CONFIG_MAP, cm(generateName="Web-"))] == ["metadata.generateName"]


def test_name_follows_the_kinds_rule() -> None:
    assert errors(CONFIG_MAP, cm(name="a.b")) == []  # subdomain
    assert [e.split(":")[0] for e in errors(NAMESPACE, {"metadata": {"name": "a.b"}})] == ["metadata.name"]
    svc = {"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}
    assert [e.split(": ")[0] for e in errors(SERVICE, svc)] == ["metadata.name"]


def test_namespace_checks() -> None:
    assert [e.split(":")[0] for e in errors(CONFIG_MAP, cm(name="c", namespace="Bad_NS"))] == [
        "metadata.namespace"
    ]
    node = {"metadata": {"name": "n1", "namespace": "default"}}
    assert errors(NODE, node) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_labels_and_annotations_are_checked() -> None:
    errs = errors(
        CONFIG_MAP, cm(name="c", labels={"bad key!": "v", "ok": "bad value!"}, annotations={"/x": "y"})
    )
    assert [e.split(": ")[0] for e in errs] == [
        "metadata.labels",
        "metadata.labels[ok]",
        "metadata.annotations",
    ]


def test_finalizers_and_owner_references() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True}
    other = {**owner, "name": "b", "uid": "2"}
    errs = errors(CONFIG_MAP, cm(name="c", finalizers=["bad finalizer"], ownerReferences=[owner, other]))
    assert [e.split(": ")[0] for e in errs] == ["metadata.finalizers", "metadata.ownerReferences"]
    assert "Only one reference can have Controller set to true" in errs[1]


def test_api_version_and_kind_must_match() -> None:
    body = {**cm(name="c"), "apiVersion": "v2", "kind": "Secret"}
    assert errors(CONFIG_MAP, body) == [
        'apiVersion: Invalid value: "v2": must be v1',
        'kind: Invalid value: "Secret": must be ConfigMap',
    ]


def test_unknown_fields_are_dropped_and_reported() -> None:
    body = {"metadata": {"name": "c", "colour": "red"}, "data": {}, "extra": 1}
    out, errs, unknown = admit(CONFIG_MAP, body)
    assert errs == [] and unknown == ["metadata.colour", "extra"]
    assert "extra" not in out and "colour" not in out["metadata"]


def test_type_errors_stop_before_defaults_and_validation() -> None:
    out, errs, _ = admit(POD, {"metadata": {"name": "p"}, "spec": {"containers": {"name": "c"}}})
    assert [str(e) for e in errs] == ['spec.containers: Invalid value: "object": must be of type array']
    assert "status" not in out  # no default hook ran


def test_an_error_reported_by_schema_and_validation_is_listed_once() -> None:
    body = {"metadata": {"name": "d"}, "spec": {"template": {}}}
    errs = errors(DEPLOYMENT, body)
    assert errs.count("spec.selector: Required value") == 1


def test_registry_finds_every_kind_by_kubectl_names() -> None:
    for word, kind in [
        ("ns", "Namespace"),
        ("no", "Node"),
        ("po", "Pod"),
        ("svc", "Service"),
        ("ep", "Endpoints"),
        ("secrets", "Secret"),
        ("cm", "ConfigMap"),
        ("ev", "Event"),
        ("leases", "Lease"),
        ("deploy", "Deployment"),
        ("rs", "ReplicaSet"),
        ("ds", "DaemonSet"),
        ("jobs", "Job"),
        ("deployments.apps", "Deployment"),
        ("lease.coordination.k8s.io", "Lease"),
    ]:
        found = REGISTRY.lookup(word)
        assert found is not None and found.kind == kind, word
    in_all = {k.kind for k in REGISTRY.kinds if "all" in k.categories}
    assert in_all == {"Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job"}
    assert [k.kind for k in REGISTRY.kinds][:3] == ["Namespace", "Node", "Pod"]
